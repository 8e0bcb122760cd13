cd genline   # your clone of the repository
make run    # installs into .venv, starts the platform, runs a demo job, then keeps serving
