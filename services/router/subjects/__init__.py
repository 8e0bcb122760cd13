"""Orders of a subject (a person or product from the tenant's photos) and orders across styles
(DESIGN.md §13), in the router:

choosing.py   how an order carries its subject, by expected cost per passing image (pure)
orders.py     an attempt made ready: its styles, its subject's identity (planned, waited for,
              moved to reference when its training failed)
training.py   trainings as remote jobs, driven by the router that claims them; cleanups of
              canceled and erased identities
files.py      the subject's photos opened with its key; the weights' copies and links
store.py      identities, each order's plan, pass-rate keys, what a rework misses per style
"""
