"""The step library: pytest-bdd step definitions, one or two lines each, calling the engine.

Every module here is loaded by the gameday pytest plugin, so any feature can use any step."""
