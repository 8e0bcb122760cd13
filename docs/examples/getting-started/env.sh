# In a second terminal, in the repository: make run wrote the demo tenant's API key here.
export GENLINE_API_URL=${GENLINE_API_URL:-http://127.0.0.1:8000}
export GENLINE_API_KEY=$(cat .genline/demo-api-key)
export PATH="$PWD/.venv/bin:$PATH"   # genline, and the Python with genline-client

genline usage   # your plan, its limits and where you stand against each
