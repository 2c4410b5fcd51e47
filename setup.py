"""Packaging for sessiond: the daemon, the session agent, the thin client.

Installed into its own virtualenv (see Makefile), so the generic top-level
package names (protocol, apps, client, isolation) cannot collide with
anything else on the machine.
"""

from setuptools import setup

setup(
    name="sessiond",
    version="0.1.0",
    description="Session-virtualization application server for Linux",
    python_requires=">=3.11",
    packages=[
        "protocol",
        "sessiond",
        "sessiond.agent",
        "sessiond.farm",
        "isolation",
        "apps",
        "client",
        "client.viewer",
        "transport",
        "media",
    ],
    # The HTML5 client's files, served by sessiond (sessiond/web.py); its tests are not installed.
    package_data={"client": ["web/*.html", "web/css/*.css", "web/js/*.js", "web/img/*.svg"]},
    install_requires=[line.strip() for line in open("requirements.txt") if line.strip() and not line.startswith("#")],
    # svclient view (client/viewer/): Qt 6, an optional extra (make install puts it in the venv).
    extras_require={"viewer": [line.strip() for line in open("requirements-viewer.txt")
                               if line.strip() and not line.startswith("#")]},
    entry_points={
        "console_scripts": [
            "sessiond = sessiond.cli:main",
            "sessionctl = sessiond.ctl:run",
            "svclient = client.cli:main",
            "sessiond-send = sessiond.agent.send:main",
        ],
    },
)
