// Package crm is the CRM store of the lifecycle campaigns: contacts, their
// timeline, the email send ledger and the suppression list, kept in
// PostgreSQL through pgx/v5.
//
// A process opens one [Store] (one pgxpool.Pool) with [Open] and shares it;
// [EnsureDatabase] creates the database named in the URL when it is missing,
// and [Store.Migrate] applies the embedded goose migrations under a
// PostgreSQL advisory lock, so workers that start together do not race.
//
// # Tables and their idempotency keys
//
// The store is written by Temporal activities, and activities are retried:
// every write is keyed by a business key chosen by the caller and is an
// upsert or an INSERT … ON CONFLICT DO NOTHING on that key, so a retried
// call never writes a second row. Keys are derived deterministically by the
// caller (for example from the workflow id and the journey step), never from
// the clock or a random source.
//
//	table              key                  written by
//	contacts           customer_id          UpsertContact, RecordTransition (stage), RecordScore (score), SetTags (tags), Erase
//	events             customer_id, event_id RecordEvents (duplicates are ignored; unknown types are kept with ignored_reason)
//	stage_transitions  transition_key       RecordTransition (with contacts.stage in the same transaction)
//	score_history      score_key            RecordScore (with contacts.score in the same transaction)
//	handoffs           handoff_key          CreateHandoff, SetHandoffStatus
//	tasks              task_key             CreateTask
//	email_log          send_key             ClaimSend, MarkSent, MarkFailed, MarkSuppressed (the send ledger)
//	suppressions       email_hash           Suppress, Erase (sha256 of the lower-cased address)
//	payload_keys       subject              package privacy (customers' wrapped data keys; Shred destroys one)
//	erasures           id                   package erasure (the audit log of erase requests)
//
// A key reused for a different customer is reported as an error, not
// silently accepted.
//
// # Exactly-once email
//
// email_log is the send ledger. Before sending, the caller claims the send
// key (customer / campaign version / step) with [Store.ClaimSend]; only a
// [ClaimNew] or [ClaimRetry] result allows sending ([ClaimResult.MaySend]).
// A claim holds a lease: while another attempt's lease runs, the answer is
// [ClaimInProgress], so two activity attempts running at once never both
// send. Right after the SMTP server accepts the message the caller records
// [Store.MarkSent]. The
// Message-ID is derived from the send key, so a retry that sends again
// carries the same Message-ID; see [ClaimRetry] for the one window that
// cannot be closed.
//
// A marketing claim may carry the campaign's [ContactPolicy] (minimum gap,
// frequency cap): a new key is then checked against every marketing email
// the ledger holds for the customer, whatever sent it, and answered
// [ClaimDeferred] with the time it may go ([Store.ClaimSendOutcome],
// [ClaimOutcome.DeferredUntil]); nothing is written for it.
//
// # Erasure
//
// [Store.Erase] deletes a person's data in one transaction: the address is
// added to the suppression list by hash only, profile fields, tags, event
// properties, task titles and ledger addresses are blanked, and an
// anonymised tombstone (customer_id, stage "erased", erased_at) stays in
// contacts so that a late write cannot bring the person back
// ([ErrErased]).
//
// Times are stored as timestamptz. Invalid input is rejected before any
// write with a [*ValidationError] that names the field (errors.Is(err,
// ErrInvalid) holds).
package crm
