make test        # installs what the tests need, then runs every test (as CI does)
make test-fast   # between edits: every test but those that start services or a browser
