"""GPUs: which ones a server may use (:mod:`.pinning`) and how their memory is read beyond NVML (:mod:`.amd`,
:mod:`.apple`). Nothing here imports a GPU library at module level: each is optional and may be absent."""
