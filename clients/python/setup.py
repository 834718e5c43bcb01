"""Builds baton-client with Baton's scripts inside: the build flattens ../../lua (the scripts of
the Baton tree this package is built from) into baton_client/scripts, so an installed client
needs no path into the Baton tree and runs exactly the scripts of the release it was built
from. Everything else is in pyproject.toml."""
import json
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "..", "..", "lua")


class BuildWithScripts(build_py):
    def run(self):
        super().run()
        if not os.path.exists(os.path.join(LUA, "manifest.json")):
            raise SystemExit(f"baton-client: Baton's lua/ not found at {LUA}: build from a Baton checkout")
        sys.path.insert(0, HERE)
        from baton_client import Scripts  # the same flattener the client uses at run time

        scripts = Scripts(LUA)
        out = os.path.join(self.build_lib, "baton_client", "scripts")
        os.makedirs(out, exist_ok=True)
        for name, spec in scripts.manifest["scripts"].items():
            with open(os.path.join(out, spec["file"]), "w") as f:
                f.write(scripts.bodies[name])
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(scripts.manifest, f, indent=1)


setup(cmdclass={"build_py": BuildWithScripts})
