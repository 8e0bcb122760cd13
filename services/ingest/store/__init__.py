"""The kernel's SQL, what every feature may use: who calls (callers.py: an API key or a console
session, and the request rates), and each job's or subject's data key (data_keys.py). A feature
package keeps its own SQL (jobs/store/, members/store/, subjects/store.py, …).

    callers.py    the API key or console session a request carries; the request rate of a
                  tenant's plan and that of anonymous clients
    data_keys.py  the `data_keys` table
"""
