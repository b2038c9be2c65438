package activities

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the project's own counters, served by the worker next to the
// Temporal SDK's metrics. A nil *Metrics counts nothing (tests, tools).
type Metrics struct {
	emails    *prometheus.CounterVec
	crmWrites *prometheus.CounterVec
	events    *prometheus.CounterVec
}

// NewMetrics registers the counters with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifecycle_emails_total",
			Help: "Journey and broadcast emails by outcome: sent, duplicate (an earlier attempt sent it), suppressed, cancelled (planned in a stage the customer left), bounced (the server refused the address, now suppressed), failed (refused for good), retry (a transient failure; tried again later), deferred (the send ledger's contact policy, minimum gap or frequency cap, does not allow it yet; nothing sent).",
		}, []string{"outcome"}),
		crmWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifecycle_crm_writes_total",
			Help: "CRM writes by operation and result: ok, error (retried later, nothing is dropped) or rejected (refused for good: bad input, an erased customer).",
		}, []string{"op", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lifecycle_crm_events_total",
			Help: "Events the journeys wrote to the CRM event log, by outcome: new, or duplicate (the CRM had it already). A retried write counts again.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.emails, m.crmWrites, m.events)
	return m
}

// Email counts one email by outcome; broadcasts and journeys share it.
func (m *Metrics) Email(outcome string) {
	if m != nil {
		m.emails.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) crmWrite(op string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.crmWrites.WithLabelValues(op, result).Inc()
}

// crmRejected counts a CRM write refused for good (bad input, an erased
// customer): it is dropped, and the journey's timeline says so.
func (m *Metrics) crmRejected(op string) {
	if m != nil {
		m.crmWrites.WithLabelValues(op, "rejected").Inc()
	}
}

func (m *Metrics) eventsRecorded(fresh, total int) {
	if m != nil {
		m.events.WithLabelValues("new").Add(float64(fresh))
		m.events.WithLabelValues("duplicate").Add(float64(total - fresh))
	}
}
