-- One login role per service, as the manifests' Secrets name them (genline_<service>). Each
-- may connect and create schemas; at its first start a service creates its own schema (named
-- after it: ingest, ledger, router, scorer, delivery), owns it, and applies its migrations
-- there. No role is granted anything on another's schema. Run as the database's owner, with
-- a long random password of its own for each role.
CREATE ROLE genline_ingest LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_ledger LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_router LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_scorer LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
CREATE ROLE genline_delivery LOGIN NOINHERIT PASSWORD 'CHANGE_ME';
GRANT CONNECT, CREATE ON DATABASE genline
  TO genline_ingest, genline_ledger, genline_router, genline_scorer, genline_delivery;
