# The keys a new deployment needs, made on your workstation and written to files only you
# can read: load them into the Secrets, then delete the files. Never commit them.
umask 077
genline service-keys > service-keys.env      # an Ed25519 identity key per service, and the public keys
genline receipts keygen > receipt-key.env    # ingest's receipt signing key
genline data-keys new-kek kek.json           # the key-encryption key of the jobs' data keys (ingest only)

# One env file per service: its own identity key, and every service's public key.
public_keys=$(grep '^GENLINE_SERVICE_KEYS=' service-keys.env)
for service in ingest ledger router scorer delivery; do
  own_key=$(grep -A1 "^# genline-$service Secret" service-keys.env | grep '^GENLINE_SERVICE_KEY=')
  printf '%s\n%s\n' "$own_key" "$public_keys" > "genline-$service.env"
done
grep '^GENLINE_RECEIPT_SIGNING_KEY=' receipt-key.env >> genline-ingest.env

# Five different identity keys, a signing key for ingest only, and an active KEK.
test "$(cat genline-*.env | grep '^GENLINE_SERVICE_KEY=' | sort -u | wc -l)" -eq 5
test "$(grep -l '^GENLINE_RECEIPT_SIGNING_KEY=' genline-*.env)" = genline-ingest.env
jq -e '.keys[.active]' kek.json > /dev/null
ls genline-*.env kek.json
