"""Starting the wizard: on the project picker, on one project, or as the demo against the sandbox."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from cliniko2nutshell.journey import Step


def run_wizard(project: Path | None = None, *, screen_share: bool = False) -> int:
    from cliniko2nutshell.tui.app import WizardApp

    WizardApp(project, screen_share=screen_share).run()
    return 0


def run_demo(
    patients: int = 300, seed: int = 1, *, rate_limit: int = 200, screen_share: bool = False, hostile: bool = False
) -> int:
    """Both sandboxes, a throw-away project pointing at them, the sandbox keys in memory (never the keychain),
    and the wizard at Connect with the fields filled. Quitting stops the sandboxes and removes the project."""
    from cliniko2nutshell.project import create_project
    from cliniko2nutshell.project.secrets import MemoryKeyring
    from cliniko2nutshell.sandbox.run import start_sandbox
    from cliniko2nutshell.tui.app import WizardApp
    from cliniko2nutshell.tui.session import DemoInfo

    extra = ", with its hostile records" if hostile else ""
    print(f"Starting the sandboxes with a {patients}-patient synthetic clinic (seed {seed}){extra}…", file=sys.stderr)
    sandbox = start_sandbox(patients, seed, cliniko_rate_limit=rate_limit, hostile=hostile)
    folder = Path(tempfile.mkdtemp(prefix="cliniko2nutshell-demo-"))
    try:
        info = sandbox.describe()
        project = create_project("Demo clinic (sandbox)", path=folder / "project", command="cliniko2nutshell demo")
        project.settings.cliniko.base_url = info["cliniko"]["base_url"]
        project.settings.nutshell.base_url = info["nutshell"]["base_url"]
        project.save_settings()
        project.close()
        demo = DemoInfo(
            cliniko_url=info["cliniko"]["base_url"],
            cliniko_key=info["cliniko"]["api_key"],
            nutshell_url=info["nutshell"]["base_url"],
            nutshell_username=info["nutshell"]["username"],
            nutshell_key=info["nutshell"]["api_key"],
            patients=patients,
            rate_limit=rate_limit,
        )
        app = WizardApp(
            folder / "project",
            demo=demo,
            keyring_backend=MemoryKeyring(),
            screen_share=screen_share,
            start_step=Step.CONNECT,
        )
        app.run()
    finally:
        sandbox.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("The demo's sandboxes are stopped and its project removed.", file=sys.stderr)
    return 0
