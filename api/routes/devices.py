"""GET /trials/{trial}/devices: each device of a trial and what is known about it now."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PathTrial, StoreDep
from api.errors import error_responses
from api.schemas import DeviceStateList, DeviceStatePublic, DeviceStatus
from midika.models.records import DeviceState
from midika.models.trial import Device

router = APIRouter(prefix="/trials", tags=["devices"], responses=error_responses(400, 404, 503))


@router.get("/{trial}/devices", summary="Devices of a trial with their state")
def list_devices(trial: PathTrial, store: StoreDep) -> DeviceStateList:
    """Every declared device, with last_seen, online/offline and health from what it last sent."""
    states = {state.device: state for state in store.device_states(trial=trial.id)}
    return DeviceStateList(items=[_public(device, states.get(device.id)) for device in trial.devices])


def _public(device: Device, state: DeviceState | None) -> DeviceStatePublic:
    online = state.online if state else None
    if online is None:
        status = DeviceStatus.UNKNOWN
    else:
        status = DeviceStatus.ONLINE if online else DeviceStatus.OFFLINE
    return DeviceStatePublic(
        id=device.id,
        profile=device.profile,
        site=device.site,
        status=status,
        online=online,
        last_seen=state.last_seen if state else None,
        status_ts=state.status_ts if state else None,
        battery=state.battery if state else None,
        rssi=state.rssi if state else None,
        firmware=state.firmware if state else None,
    )
