"""A feature flag is a key of the service's flags ConfigMap: the names the API server would refuse are
refused before anything starts, as its IsConfigMapKey does."""

from __future__ import annotations

import pytest

from gameday.errors import ConfigError
from gameday.manifests import check_flag_name


@pytest.mark.parametrize("flag", ["new-pricing", "checkout.v2", "A_B", "x" * 253, ".hidden", "a..b"])
def test_a_configmap_key_is_a_flag_name(flag):
    check_flag_name(flag)


@pytest.mark.parametrize("flag", ["", ".", "..", "..x", "new pricing", "a/b", "é", "x" * 254])
def test_anything_the_api_server_refuses_is_not(flag):
    with pytest.raises(ConfigError, match="is not a ConfigMap key"):
        check_flag_name(flag)
