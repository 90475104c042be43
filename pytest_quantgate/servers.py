"""The servers one process holds: a lease, a client and a memory sampler per preset (no pytest here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_quantgate.gpu.pinning import physical_devices
from pytest_quantgate.memory import PeakSampler, probe_for, write_probe_state
from pytest_quantgate.sharing import Lease, acquire, attach
from pytest_quantgate.template import record_chat_template

if TYPE_CHECKING:
    from pytest_quantgate.client import Client
    from pytest_quantgate.config import RunConfig
    from pytest_quantgate.presets import Preset


class Servers:
    """The leases and memory samplers this process holds, one per preset."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._leases: dict[str, Lease] = {}
        self._samplers: dict[str, PeakSampler] = {}
        self._clients: dict[str, Client] = {}
        self._devices: dict[str, list[str]] = {}  # pinned devices as the machine numbers them

    def lease(self, preset: Preset) -> Lease:
        if preset.id not in self._leases:
            if preset.driver == "external":
                assert preset.base_url is not None
                lease = attach(preset.base_url, preset)
            else:
                lease = acquire(preset, self.config.preset_dir(preset.id), shared=self.config.shared)
            self._leases[preset.id] = lease
            self._record_effective(preset)
            record_chat_template(lease.base_url, self.config.preset_dir(preset.id), api_key=preset.api_key())
            if lease.info.pid is not None:
                devices = physical_devices(preset.devices) if preset.devices else []
                probe = probe_for(lease.info.pid, devices=devices or None)
                self._samplers[preset.id] = PeakSampler(probe).start()
                self._devices[preset.id] = devices
                write_probe_state(self.config.preset_dir(preset.id), probe, devices)
        return self._leases[preset.id]

    def _record_effective(self, preset: Preset) -> None:
        """What the server runs with (/props, /slots), kept for the result's provenance; once per preset.
        Through the preset's own client: a new httpx client costs ~50 ms (its TLS context) at start-up."""
        from pytest_quantgate import effective

        directory = self.config.preset_dir(preset.id)
        if not (directory / effective.FILE_NAME).exists():
            effective.save(effective.read(self.client(preset)), directory)

    def client(self, preset: Preset) -> Client:
        from pytest_quantgate.client import Client

        if preset.id not in self._clients:
            lease = self.lease(preset)
            self._clients[preset.id] = Client(
                lease.base_url,
                api_key=preset.api_key(),
                defaults=preset.request_defaults(),
                max_tokens=preset.max_tokens,
                timeout_s=preset.timeout_s,
                stream=preset.stream,
                on_transport_error=lease.check_alive,
            )
        return self._clients[preset.id]

    def memory(self, preset_id: str) -> tuple[float | None, float | None, str | None]:
        """(latest reading, peak so far, source) for the preset's server, all None when not measurable.

        Called after every level: it reads what the sampler thread last measured (≤ 0.25 s old) rather
        than scanning the process tree on the level's path.
        """
        sampler = self._samplers.get(preset_id)
        if sampler is None:
            return None, None, None
        return sampler.latest_mb, sampler.peak_mb, sampler.probe.source

    def release(self, preset_id: str) -> None:
        if (client := self._clients.pop(preset_id, None)) is not None:
            client.close()
        if (sampler := self._samplers.pop(preset_id, None)) is not None:
            sampler.stop()  # the probe's last word: a fallback may have begun during the run
            write_probe_state(self.config.preset_dir(preset_id), sampler.probe, self._devices.pop(preset_id, []))
        if (lease := self._leases.pop(preset_id, None)) is not None:
            lease.release()

    def release_all(self) -> None:
        for preset_id in list(self._leases):
            self.release(preset_id)
