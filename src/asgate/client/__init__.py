"""asgate SDK: typed async clients for asgate's APIs, raising the servers' own ProblemError."""

from asgate.client._http import ApiClient, raise_for_problem
from asgate.client.agent import AgentState, ServiceAgent
from asgate.client.application import ExternalApplication, priority_header, service_capabilities
from asgate.client.assertion import (
    SasAssertionError,
    SasCaller,
    SasKeys,
    pool_audience,
    verify_sas_assertion,
)
from asgate.client.browser import ScriptedBrowser
from asgate.client.health import HealthCheck, http_health_check, tcp_health_check
from asgate.client.login import UserLogin, UserTokens, open_system_browser, print_url
from asgate.client.msgin5g import ApplicationServer, MsgsAdmin
from asgate.client.notifications import CallbackListener, WebSocketListener
from asgate.client.reconfigure import Reconfigurer
from asgate.client.registration import ServiceRegistrationClient
from asgate.client.registry import RegistryClient
from asgate.client.sync import SyncExternalApplication
from asgate.client.tokens import ClientCredentials
from asgate.domain.registry import ApplicationProfile, ServiceCapabilities
from asgate.kernel.problem import ProblemError
from asgate.registry.models import AuthorizationResponse, ProfileNotification, ServiceInformation

__all__ = [
    "AgentState",
    "ApiClient",
    "ApplicationProfile",
    "ApplicationServer",
    "AuthorizationResponse",
    "CallbackListener",
    "ClientCredentials",
    "ExternalApplication",
    "HealthCheck",
    "MsgsAdmin",
    "ProblemError",
    "ProfileNotification",
    "Reconfigurer",
    "RegistryClient",
    "SasAssertionError",
    "SasCaller",
    "SasKeys",
    "ScriptedBrowser",
    "ServiceAgent",
    "ServiceCapabilities",
    "ServiceInformation",
    "ServiceRegistrationClient",
    "SyncExternalApplication",
    "UserLogin",
    "UserTokens",
    "WebSocketListener",
    "http_health_check",
    "open_system_browser",
    "pool_audience",
    "print_url",
    "priority_header",
    "raise_for_problem",
    "service_capabilities",
    "tcp_health_check",
    "verify_sas_assertion",
]
