package activities_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
)

// A journey email the ledger's contact policy defers: a broadcast reached
// the customer half an hour ago. SendEmail answers SendDeferred with the
// rule and the time, sends nothing to Mailpit and leaves no ledger row, so
// the workflow's later send of the same key goes out once.
func TestSendEmailWithAPolicyIsDeferredByABroadcast(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	f.acts.Metrics = activities.NewMetrics(reg)
	id, addr := newCustomer("gap")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))

	// The broadcast's send, as its page records it.
	broadcastKey := activities.BroadcastSendKey(id, "news-gap")
	got, err := f.store.ClaimSend(f.ctx, crm.SendClaim{Key: broadcastKey, CustomerID: id, Email: addr,
		Template: "holiday_new_year", Category: crm.CategoryMarketing, MessageID: "<" + id + "@news>"})
	require.NoError(t, err)
	require.Equal(t, crm.ClaimNew, got)
	sentAt := time.Now().Add(-30 * time.Minute).Truncate(time.Millisecond)
	require.NoError(t, f.store.MarkSent(f.ctx, broadcastKey, sentAt))

	in := f.marketingSend(id, addr)
	in.Policy = &activities.ContactPolicy{MinGap: 4 * time.Hour}
	res := f.mustSend(in)
	require.Equal(t, activities.SendDeferred, res.Status)
	require.Equal(t, campaign.ReasonMinGap, res.Reason)
	require.True(t, sentAt.Add(4*time.Hour).Equal(res.DeferredUntil), "deferred until %s", res.DeferredUntil)
	require.Empty(t, res.MessageID)
	_, err = f.store.GetSend(f.ctx, in.Key)
	require.ErrorIs(t, err, crm.ErrNotFound, "no ledger row")

	// The cap, when it is the later rule.
	in.Policy = &activities.ContactPolicy{MinGap: time.Hour, CapMax: 1, CapWindow: 24 * time.Hour}
	res = f.mustSend(in)
	require.Equal(t, activities.SendDeferred, res.Status)
	require.Equal(t, campaign.ReasonFrequencyCap, res.Reason)
	require.True(t, sentAt.Add(24*time.Hour).Equal(res.DeferredUntil), "deferred until %s", res.DeferredUntil)

	// A transactional notice about the customer is never deferred.
	_, owner := newCustomer("gap-owner")
	notice := f.handoffNotice(id, owner)
	notice.Policy = &activities.ContactPolicy{MinGap: 4 * time.Hour}
	require.Equal(t, activities.SendSent, f.mustSend(notice).Status)
	f.waitForOne(owner)

	f.requireNoMail(addr)
	require.Equal(t, 2.0, counterValue(t, reg, "lifecycle_emails_total", map[string]string{"outcome": "deferred"}))

	// Once the gap has passed, the same key is sent, once.
	_, err = f.store.Pool().Exec(f.ctx, `UPDATE email_log SET sent_at = sent_at - interval '1 day' WHERE send_key = $1`, broadcastKey)
	require.NoError(t, err)
	res = f.mustSend(in)
	require.Equal(t, activities.SendSent, res.Status)
	require.True(t, res.DeferredUntil.IsZero())
	msg := f.waitForOne(addr)
	require.Equal(t, strings.Trim(res.MessageID, "<>"), msg.MessageID)
}
