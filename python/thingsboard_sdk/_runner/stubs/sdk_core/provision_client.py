"""``sdk_core.provision_client`` stand-in."""

from thingsboard_sdk.provision_client import ProvisionClient  # noqa: F401
