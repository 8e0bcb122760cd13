"""The web console, one feature package: a static page and hand-written ES modules (no build
step) that call the public `/v1` API from the browser, and the route that serves them.

    routes.py      `/console`: the page on every path under it, the assets under
                   `/console/assets`, and the page's Content-Security-Policy
    index.html     the page; console.js draws it from the path and imports the other modules
                   (navigation, api, dom, session, signin and a module a view: jobs, job,
                   clips, receipts, account, billing, usage, keys, members, audit, subjects,
                   operator, verify), with console.css and favicon.svg
"""
