"""jinja2 templates of the HCL job specs modalc emits (data files, shipped in the wheel).

Runs on the client. Located with importlib.resources, so they are found both
in a checkout and in an installed wheel.
"""
