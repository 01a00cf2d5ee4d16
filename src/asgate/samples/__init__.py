"""Small sample MC service servers for the demo and the tests (not production services).

Each registers itself with the service registry server through :class:`asgate.client.ServiceAgent`
and expects its requests from the service access server, which asserts the caller in
``Asgate-MC-Service-Id`` (the MC user) and ``Asgate-Application`` (the external application's
client id) and passes ``Resource-Priority`` through. Every response names the instance that
answered in ``X-Sample-Instance``.

    from asgate.samples import run_samples
    handle = await run_samples("http://127.0.0.1:7480", ClientCredentials(...), ["gm", "gm", "mcdata"])
    ...
    await handle.stop()
"""

from asgate.samples.common import APPLICATION, INSTANCE_HEADER, MC_SERVICE_ID, Sample, SampleSpec
from asgate.samples.runner import DEFAULT_SAMPLES, SPECS, RunningSample, SamplesHandle, run_samples

# Said by `asgate up --samples` and `asgate demo`, which allow loopback (denied by default) because the
# samples and the demo's application listen on 127.0.0.1.
LOOPBACK_ALLOWED = (
    "outbound policy: loopback allowed for the samples "
    "(MC service instances and notification destinations on 127.0.0.1)"
)

__all__ = [
    "APPLICATION",
    "DEFAULT_SAMPLES",
    "INSTANCE_HEADER",
    "LOOPBACK_ALLOWED",
    "MC_SERVICE_ID",
    "SPECS",
    "RunningSample",
    "Sample",
    "SampleSpec",
    "SamplesHandle",
    "run_samples",
]
