"""The simulators' exceptions: one root, and whether trying again can help."""

from __future__ import annotations

from midika.errors import MidikaError


class SimulatorError(MidikaError):
    """Root of the errors the simulators raise."""


class DeviceRefused(SimulatorError):
    """The broker refused a simulated device's login: wrong secret, unknown user, or not allowed."""


class BrokerUnavailable(SimulatorError):
    """The broker could not be reached or did not answer in time; a later attempt may work."""

    retryable = True
