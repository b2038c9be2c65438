package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/erasure"
)

// eraseCmd: starter erase CUSTOMER_ID — the same erase as the API's
// DELETE /v1/customers/{id} (package erasure), for an operator at a
// terminal.
func (a *app) eraseCmd() *cobra.Command {
	var by string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "erase CUSTOMER_ID [--by WHO]",
		Short: "Erase a customer: end the journey, redact the CRM, destroy the data key (idempotent)",
		Long: `Erase forgets a customer whatever the state of their journey (running,
ended, never started): it terminates a running journey, redacts the CRM
rows, destroys the customer's data key so their Temporal payloads can no
longer be decrypted, and writes an audit row (who, when, what was done).
Running it again is safe. See docs/privacy.md.`,
		Args: exactArgs("CUSTOMER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if by == "" {
				by = "cli:" + osUser()
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if err := a.connectCtx(ctx); err != nil {
				return err
			}
			defer a.close()
			store, err := crm.Open(ctx, a.cfg.DatabaseURL.Value())
			if err != nil {
				return fmt.Errorf("cannot reach the CRM database: %w", err)
			}
			defer store.Close()
			e := &erasure.Eraser{Journeys: a.starter(), CRM: store, Keys: a.enc.Keys, Audit: store.Pool()}
			res, err := e.Erase(ctx, erasure.Request{CustomerID: args[0], RequestedBy: by})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "customer %s erased (audit #%d): journey %s, CRM %s, data key %s\n",
				res.CustomerID, res.AuditID, res.Journey, res.CRM, res.DataKey)
			return nil
		},
	}
	cmd.Flags().StringVar(&by, "by", "", `who asks, for the audit log (default "cli:<your user name>"); no personal data of the customer`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// rotateKEKCmd: starter rotate-kek — rewraps every data key with the
// current PAYLOAD_KEK (docs/privacy.md, "Rotating the key-encryption key").
func (a *app) rotateKEKCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-kek",
		Short: "Rewrap every customer's data key with the current PAYLOAD_KEK (old ones in PAYLOAD_KEK_PREVIOUS)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Hour)
			defer cancel()
			if err := a.connectCtx(ctx); err != nil {
				return err
			}
			defer a.close()
			n, err := a.enc.Keys.Rewrap(ctx)
			if err != nil {
				return fmt.Errorf("rewrap data keys (%d done): %w", n, err)
			}
			ring, err := a.cfg.Payload.Keyring() // parsed by connect already
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d data keys rewrapped with key-encryption key %s; PAYLOAD_KEK_PREVIOUS can now be removed\n",
				n, ring.Current.ID())
			return nil
		},
	}
}

// osUser names who runs the command, for the audit log.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if v := os.Getenv("USER"); v != "" {
		return v
	}
	return "unknown"
}
