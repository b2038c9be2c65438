package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Search attributes a journey keeps up to date (registered by the stack
// scripts; see docs/journey.md).
var (
	AttrStage           = temporal.NewSearchAttributeKeyKeyword("JourneyStage")
	AttrScore           = temporal.NewSearchAttributeKeyInt64("LeadScore")
	AttrCustomerID      = temporal.NewSearchAttributeKeyKeyword("CustomerID")
	AttrCampaignVersion = temporal.NewSearchAttributeKeyKeyword("CampaignVersion")
)

// ScoreStep is the step of the LeadScore search attribute: it holds the
// score rounded down to a multiple of ten. Every upsert is a visibility
// write on the server (on the dev server's SQLite it costs about as much as
// the rest of an event's workflow task) and an action in Temporal Cloud,
// and most events move the score by 1–3 points; a lead passes through six
// values on the way to the threshold of the built-in campaign (60). A
// pricing view (10 points) moves it at once. The exact score is in the
// current details and the state query.
const ScoreStep = 10

// VisibleScore is the LeadScore search attribute's value for a score: the
// score rounded down to a multiple of ScoreStep (a score of 43 shows as 40,
// so `LeadScore >= 40` finds it; filter on multiples of ScoreStep).
func VisibleScore(score int) int64 {
	return int64(score - ((score%ScoreStep)+ScoreStep)%ScoreStep)
}

// publish keeps the UI's view current: stage, score, next step and when,
// the email in flight and the CRM backlog, in the current details.
func (j *journey) publish(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**Stage** %s since %s  \n**Score** %d (fit %d + behaviour %d, threshold %d)  \n",
		j.s.Stage, j.s.StageEnteredAt.In(j.loc).Format("2006-01-02"), j.s.score(), j.s.Fit, j.s.Behaviour,
		j.c.Scoring.Threshold)
	if f := j.inFlight; f != nil {
		fmt.Fprintf(&b, "**Sending** %s  \n", f.req.label)
	} else {
		fmt.Fprintf(&b, "**Next** %s  \n", j.nextLabel())
	}
	if st := j.crmStatus(); j.crmBackedUp() && st != "" {
		fmt.Fprintf(&b, "**CRM** %s  \n", st)
	}
	fmt.Fprintf(&b, "**Campaign** %s@%s", j.s.CampaignID, j.s.CampaignVersion)
	workflow.SetCurrentDetails(ctx, b.String())
}

func (j *journey) nextLabel() string {
	label := j.next.label()
	if j.next.Kind != actWait && j.next.Kind != "" {
		label += " at " + j.next.At.In(j.loc).Format("2006-01-02 15:04 MST")
	}
	return label
}

// writeAttributes upserts the search attributes that changed, in one
// upsert per loop turn: every upsert is a history event and a visibility
// write. It runs before the journey performs its next step, so a stage is
// visible before the stage's entry emails go out.
func (j *journey) writeAttributes(ctx workflow.Context) {
	current := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	if v, ok := current.GetKeyword(AttrStage); !ok || v != string(j.s.Stage) {
		updates = append(updates, AttrStage.ValueSet(string(j.s.Stage)))
	}
	score := VisibleScore(j.s.score())
	if v, ok := current.GetInt64(AttrScore); !ok || v != score {
		updates = append(updates, AttrScore.ValueSet(score))
	}
	if v, ok := current.GetKeyword(AttrCustomerID); !ok || v != j.s.CustomerID {
		updates = append(updates, AttrCustomerID.ValueSet(j.s.CustomerID))
	}
	if v, ok := current.GetKeyword(AttrCampaignVersion); !ok || v != j.s.CampaignID+"@"+j.s.CampaignVersion {
		updates = append(updates, AttrCampaignVersion.ValueSet(j.s.CampaignID+"@"+j.s.CampaignVersion))
	}
	if len(updates) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

func (j *journey) view() JourneyView {
	v := JourneyView{
		CustomerID: j.s.CustomerID, Journey: j.s.Journey, CampaignID: j.s.CampaignID, CampaignVersion: j.s.CampaignVersion,
		Stage: j.s.Stage, StageEnteredAt: j.s.StageEnteredAt, Score: j.s.score(), FitScore: j.s.Fit,
		BehaviourScore: j.s.Behaviour, MailSuppressed: j.s.MailSuppressed, Tags: slices.Clone(j.s.Tags), Run: j.s.Run,
		Timeline:   append([]TimelineEntry(nil), j.s.Timeline...),
		CRMBacklog: len(j.s.CRM.Writes), CRMError: j.s.CRM.LastError, WaitingFor: j.waitingFor,
		Advocate: j.s.Advocate, Detractor: j.s.Detractor, NPSScore: j.s.NPSScore, AsksEnded: slices.Clone(j.s.AsksEnded),
		Dates: maps.Clone(j.s.Dates), Deferred: len(j.s.Deferred),
	}
	if j.crmBackedUp() {
		v.CRMRetryAt = j.s.CRM.RetryAt
	}
	if j.c != nil {
		v.Threshold = j.c.Scoring.Threshold
		for _, r := range j.s.topReasons(5) {
			v.TopReasons = append(v.TopReasons, ScoreReason{Source: r.Source, Points: r.Points})
		}
	}
	if f := j.inFlight; f != nil {
		v.Sending = f.req.label
	}
	if j.next.Kind != "" {
		v.NextStep = j.next.label()
		if j.next.Kind != actWait {
			v.NextAt = j.next.At
		}
	}
	v.JourneyNow = j.clock
	return v
}

// referralCode is the customer's code for referral asks: stable, derived
// from the customer id, so it needs no storage.
func referralCode(customerID string) string {
	sum := sha256.Sum256([]byte(customerID))
	return "REF-" + strings.ToUpper(hex.EncodeToString(sum[:4]))
}

// realDelay is the real time until a journey time, at least a millisecond.
func (j *journey) realDelay(ctx workflow.Context, at time.Time) time.Duration {
	d := at.Sub(j.now(ctx))
	if j.s.TimeScale > 1 {
		d = time.Duration(float64(d) / j.s.TimeScale)
	}
	return max(d, time.Millisecond)
}
