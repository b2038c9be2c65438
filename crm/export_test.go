package crm

// SegmentPageQuery is segmentPageQuery, for the EXPLAIN test of package
// crm_test: it plans exactly the statement and arguments SegmentPage runs.
var SegmentPageQuery = segmentPageQuery

// RecentMarketing is the contact policy's read, for the same test.
const RecentMarketing = recentMarketing

// MarkSentBatch is the statement that records a batch of sends as sent.
const MarkSentBatch = markSentBatch
