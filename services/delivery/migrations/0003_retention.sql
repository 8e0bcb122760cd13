-- How long each tenant's images are kept (RetentionSet); a tenant without a row keeps them.
CREATE TABLE tenant_retention (
    tenant_id       text PRIMARY KEY,
    outputs_days    int CHECK (outputs_days >= 1),
    candidates_days int CHECK (candidates_days >= 1),
    set_at          timestamptz NOT NULL
);
