# Rebuild state from the services' journals and compare it with the live state. Each
# command prints what differs and exits 1 if anything does; "no differences" is the goal.
genline replay ledger       # every account's balance and each key's spend, from the ledger's journal
genline replay audit        # the audit trail of admin and account actions, from every journal

# Receipts can be checked tenant by tenant (leave out --tenant for every tenant): each
# signature, the chain, the credits, and each delivered object against its sha256 and size.
tenant=$(genline usage --json | jq -r .tenant_id)
genline replay receipts --tenant "$tenant"
