-- The stage columns allow the journey's stages only (customer.Stages), as
-- the columns of the rest of the vocabulary (lead source, statuses,
-- reasons, categories) already did: a stage the code does not know is
-- refused by the database too, and TestSchemaAllowsTheVocabulary fails
-- when the code and these lists drift apart. Every row written so far went
-- through the same check in Go (crm.validStage), so none violates them.

-- +goose Up
ALTER TABLE contacts ADD CONSTRAINT contacts_stage_check
    CHECK (stage IN ('', 'pending', 'trial', 'nurture', 'sales', 'onboarding', 'active', 'at_risk', 'churned', 'unsubscribed', 'erased'));
ALTER TABLE stage_transitions ADD CONSTRAINT stage_transitions_from_stage_check
    CHECK (from_stage IN ('', 'pending', 'trial', 'nurture', 'sales', 'onboarding', 'active', 'at_risk', 'churned', 'unsubscribed', 'erased'));
ALTER TABLE stage_transitions DROP CONSTRAINT stage_transitions_to_stage_check;
ALTER TABLE stage_transitions ADD CONSTRAINT stage_transitions_to_stage_check
    CHECK (to_stage IN ('pending', 'trial', 'nurture', 'sales', 'onboarding', 'active', 'at_risk', 'churned', 'unsubscribed', 'erased'));

-- +goose Down
ALTER TABLE stage_transitions DROP CONSTRAINT stage_transitions_to_stage_check;
ALTER TABLE stage_transitions ADD CONSTRAINT stage_transitions_to_stage_check CHECK (to_stage <> '');
ALTER TABLE stage_transitions DROP CONSTRAINT stage_transitions_from_stage_check;
ALTER TABLE contacts DROP CONSTRAINT contacts_stage_check;
