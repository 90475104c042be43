# hidden/ holds the pytest files the sandbox runs against the model's code: they are not levels, and they
# import a `solution` module that exists only inside the sandbox. Ignored here (not in pytest.ini) so that
# they stay out of collection whichever ini file a run picks up.
collect_ignore = ["hidden"]
