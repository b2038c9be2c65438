package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// daytimeZone returns a time zone where it is working hours now, so that
// quiet hours (21:00-08:00 local) never delay the welcome emails whatever
// time of day the test runs.
func daytimeZone(t *testing.T) string {
	for _, name := range []string{"UTC", "Asia/Tokyo", "Asia/Kolkata", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Auckland"} {
		loc, err := time.LoadLocation(name)
		require.NoError(t, err)
		if h := time.Now().In(loc).Hour(); h >= 9 && h < 18 {
			return name
		}
	}
	t.Fatal("no daytime zone found")
	return ""
}

// workerProcess is the worker command run as a separate process, so it can
// be killed with SIGKILL like a crashed machine.
type workerProcess struct {
	cmd *exec.Cmd
	log *os.File
}

func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/acme/lifecycle/worker").CombinedOutput()
	require.NoError(t, err, "build worker: %s", out)
	return bin
}

func (s *stack) startProcess(t *testing.T, bin string) *workerProcess {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	require.NoError(t, err)
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	p := &workerProcess{cmd: cmd, log: log}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
	})
	return p
}

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
	bin := buildWorker(t)
	const customers = 40
	domain := "kill-" + testenv.RandomID(4) + ".example"
	zone := daytimeZone(t)

	first := s.startProcess(t, bin)
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
	waitFor(t, 60*time.Second, "the first welcome emails", func() (bool, string) {
		n := len(s.mails(t, domain))
		return n >= 5, fmt.Sprint(n)
	})
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = first.cmd.Process.Wait()
	atKill := len(s.mails(t, domain))
	t.Logf("killed the worker with %d of %d welcomes sent", atKill, customers)

	s.startProcess(t, bin)
	// In-flight activities of the dead worker time out (start-to-close) and
	// their send claims must lapse before a retry may send: allow minutes.
	waitFor(t, 4*time.Minute, "every customer's welcome", func() (bool, string) {
		got := map[string]bool{}
		for _, m := range s.mails(t, domain) {
			for _, to := range m.To {
				got[to.Address] = true
			}
		}
		return len(got) == customers, fmt.Sprintf("%d of %d customers", len(got), customers)
	})
	time.Sleep(2 * time.Second) // let a would-be duplicate arrive

	store, err := crm.Open(ctx, s.cfg.DatabaseURL.Value())
	require.NoError(t, err)
	defer store.Close()
	perRecipient := map[string][]string{}
	for _, m := range s.mails(t, domain) {
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
		key := fmt.Sprintf("k%02d-%s/saas-lifecycle@v1/trial#1/welcome", i, domain)
		send, err := store.GetSend(ctx, key)
		require.NoError(t, err)
		assert.Greater(t, send.Attempts, 1, "%s: a second send without a crash in between", addr)
		resent++
	}
	t.Logf("%d of %d welcomes were in the crash window and went out twice with the same Message-ID", resent, customers)
}
