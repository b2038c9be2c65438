package crm

// SegmentPageQuery is segmentPageQuery, for the EXPLAIN test of package
// crm_test: it plans exactly the statement and arguments SegmentPage runs.
var SegmentPageQuery = segmentPageQuery
