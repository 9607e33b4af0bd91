"""pyinfra's config for runs from this directory (the pyinfra command loads ./config.py first).

Uploads are staged in /tmp, not in the temp directory pyinfra would ask the host for: over sudo,
with libpam-tmpdir (lbstack's OS hardening installs it), that is root's private one, which the
ssh user cannot write (see lbstack.transport.UPLOAD_TEMP_DIR). A TEMP_DIR of yours set here wins.
"""

from pyinfra import config

from lbstack.transport import UPLOAD_TEMP_DIR

config.TEMP_DIR = config.TEMP_DIR or UPLOAD_TEMP_DIR
