"""Browser adapters: the only pyrt code that touches ``js`` and ``pyodide`` (Pyodide only)."""
