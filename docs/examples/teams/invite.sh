api() { curl -sS --fail-with-body -H "Authorization: Bearer $GENLINE_API_KEY" -H "Content-Type: application/json" "$@"; }

# The role table: what each role may do (the same table the API and the console enforce).
curl -sS --fail-with-body "$GENLINE_API_URL/v1/roles" | jq -r '.roles[] | "\(.name): \(.scopes | join(", "))"'

# Invite a developer: a signed link that works once, mailed through the deployment's SMTP server.
invitation=$(api -X POST "$GENLINE_API_URL/v1/invitations" -d '{"email": "dev@example.com", "role": "developer"}')
echo "$invitation" | jq -e '.role == "developer" and .email == "dev@example.com"' > /dev/null

# The open invitations; revoke this one, and its link no longer works.
id=$(echo "$invitation" | jq -r .id)
api "$GENLINE_API_URL/v1/invitations" | jq -e --arg id "$id" 'any(.data[]; .id == $id)' > /dev/null
api -X DELETE "$GENLINE_API_URL/v1/invitations/$id"
api "$GENLINE_API_URL/v1/invitations" | jq -e --arg id "$id" 'all(.data[]; .id != $id)' > /dev/null

# Who this key is, and what it may do now.
api "$GENLINE_API_URL/v1/me" | jq '{tenant_id, via, scopes}'
