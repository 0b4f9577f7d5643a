"""Each step of the journey and the screen that shows it."""

from __future__ import annotations

from collections.abc import Callable

from textual.screen import Screen

from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.screens.connect import ConnectScreen
from cliniko2nutshell.tui.screens.delta import DeltaScreen
from cliniko2nutshell.tui.screens.extract import ExtractScreen
from cliniko2nutshell.tui.screens.map import MapScreen
from cliniko2nutshell.tui.screens.practitioners import PractitionersScreen
from cliniko2nutshell.tui.screens.preflight import PreflightScreen
from cliniko2nutshell.tui.screens.project import ProjectScreen
from cliniko2nutshell.tui.screens.reconcile import ReconcileScreen
from cliniko2nutshell.tui.screens.rollback import RollbackScreen
from cliniko2nutshell.tui.screens.run import RunScreen
from cliniko2nutshell.tui.screens.sample import SampleScreen

STEP_SCREENS: dict[Step, Callable[[], Screen[None]]] = {
    Step.PROJECT: ProjectScreen,
    Step.CONNECT: ConnectScreen,
    Step.EXTRACT: ExtractScreen,
    Step.PRACTITIONERS: PractitionersScreen,
    Step.MAP: MapScreen,
    Step.PREFLIGHT: PreflightScreen,
    Step.SAMPLE: SampleScreen,
    Step.RUN: RunScreen,
    Step.DELTA: DeltaScreen,
    Step.RECONCILE: ReconcileScreen,
    Step.ROLLBACK: RollbackScreen,
}
