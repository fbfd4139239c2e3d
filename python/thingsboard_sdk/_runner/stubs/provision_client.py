"""``provision_client`` stand-in: the MicroPython SDK's provisioning module as projects copy
it onto a board; the same objects as ``thingsboard_sdk.provision_client``."""

from thingsboard_sdk.provision_client import *  # noqa: F403
from thingsboard_sdk.provision_client import ProvisionClient  # noqa: F401
