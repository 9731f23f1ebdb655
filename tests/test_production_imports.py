"""The production service does not load the development PKI (issue 10 item 2).

The development PKI and the demo are development tools: a production worker
(``app.serving.wsgi`` → ``app.factory``) must not import them at all, so that no
code path of theirs can run by accident and a deployment can leave them out.
They are imported only in development mode, when the context builds them.
"""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_application_factory_imports_neither_devpki_nor_app_dev():
    probe = (
        "import json, sys\n"
        "import app.factory, app.serving.gunicorn_conf\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "    if m == 'devpki' or m.startswith(('devpki.', 'app.dev')))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
