package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// TestWorkerKilledMidBatchSendsEachEmailOnce signs up a batch of customers,
// kills the worker with SIGKILL while their welcome emails are going out,
// starts a new worker, and checks that every customer got the welcome
// exactly once.
//
// The one window no SMTP sender can close is "the server accepted the
// message, the worker died before recording it": the retry then sends again
// with the same Message-ID, which receivers deduplicate (see crm.ClaimRetry).
// The test tells that documented case (same Message-ID, ledger attempts > 1)
// from a real double send (a second Message-ID, or a second send without a
// crash in between), which fails it.
func TestWorkerKilledMidBatchSendsEachEmailOnce(t *testing.T) {
	s := newStack(t, 1)
	bin := stacktest.BuildWorker(t)
	const customers = 40
	domain := "kill-" + testenv.RandomID(4) + ".example"
	zone := stacktest.DaytimeZone(t)

	first := s.StartProcess(t, bin)
	ctx := context.Background()
	st := s.starter()
	var wg sync.WaitGroup
	errs := make(chan error, customers)
	for i := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("k%02d-%s", i, domain)
			_, err := st.Signup(ctx, workflows.Signup{CustomerID: id, Email: fmt.Sprintf("c%02d@%s", i, domain),
				FirstName: "Kim", LeadSource: "cold", TimeZone: zone})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Kill mid-batch: some welcomes are out, most are not.
	stacktest.WaitFor(t, 60*time.Second, "the first welcome emails", func() (bool, string) {
		n := len(s.Mails(t, "to:"+domain))
		return n >= 5, fmt.Sprint(n)
	})
	require.NoError(t, first.Kill())
	atKill := len(s.Mails(t, "to:"+domain))
	t.Logf("killed the worker with %d of %d welcomes sent", atKill, customers)

	s.StartProcess(t, bin)
	// In-flight activities of the dead worker time out (start-to-close) and
	// their send claims must lapse before a retry may send: allow minutes.
	stacktest.WaitFor(t, 4*time.Minute, "every customer's welcome", func() (bool, string) {
		got := map[string]bool{}
		for _, m := range s.Mails(t, "to:"+domain) {
			for _, to := range m.To {
				got[to.Address] = true
			}
		}
		return len(got) == customers, fmt.Sprintf("%d of %d customers", len(got), customers)
	})
	time.Sleep(2 * time.Second) // let a would-be duplicate arrive

	store, err := crm.Open(ctx, s.Cfg.DatabaseURL.Value())
	require.NoError(t, err)
	defer store.Close()
	perRecipient := map[string][]string{}
	for _, m := range s.Mails(t, "to:"+domain) {
		require.Len(t, m.To, 1)
		perRecipient[m.To[0].Address] = append(perRecipient[m.To[0].Address], m.MessageID)
	}
	resent := 0
	for i := range customers {
		addr := fmt.Sprintf("c%02d@%s", i, domain)
		ids := perRecipient[addr]
		require.NotEmpty(t, ids, "%s got no welcome", addr)
		if len(ids) == 1 {
			continue
		}
		assert.Len(t, ids, 2, "%s got %d welcomes", addr, len(ids))
		assert.Equal(t, ids[0], ids[1], "%s got two welcomes with different Message-IDs: a real double send", addr)
		id := fmt.Sprintf("k%02d-%s", i, domain)
		v, err := workflows.State(ctx, s.Client, id)
		require.NoError(t, err)
		key := fmt.Sprintf("%s/%s/saas-lifecycle@v1/trial#1/welcome", id, v.Journey)
		send, err := store.GetSend(ctx, key)
		require.NoError(t, err)
		assert.Greater(t, send.Attempts, 1, "%s: a second send without a crash in between", addr)
		resent++
	}
	t.Logf("%d of %d welcomes were in the crash window and went out twice with the same Message-ID", resent, customers)
}
