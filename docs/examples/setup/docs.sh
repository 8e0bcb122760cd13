make docs   # this site, into site/; under make run it is served at http://127.0.0.1:8000/docs/
