"""The one helper package of the tests: everything more than one test module shares lives here, by job
(settings, ledger, net, serving, delivery, recorder, processes, worker_processes, pg_instance, dashboard,
hubspot, salesforce, sandbox_data, screenshots). conftest.py files hold only fixtures; tests/test_layout.py
keeps it so."""
