"""The Ray tests need the ``ray`` extra (Ray Data and pyarrow); without it the folder is skipped, not an error."""

import pytest

pytest.importorskip("ray", reason="jinav3[ray] is not installed")
pytest.importorskip("pyarrow", reason="jinav3[ray] is not installed")
