"""The field map and its defaults, value maps, practitioner matching, pure transforms and the pre-flight report.

Start at: model.py (the map), mapfile.py (mapping.toml and its versions), transforms.py (records -> payloads),
preflight.py (the report), workflow.py (what the wizard and the `map` / `plan` commands call).
"""
