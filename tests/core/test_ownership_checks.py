"""Settings a writer could not carry out, refused at start: a table of owner and modes against
who the process is (uid, groups, capabilities). Pure: ``cacore.credentials.ownership_problem``."""

import pytest

from cacore.credentials import Ownership, Process, ownership_problem
from cacore.edge.process import current_process, effective_capabilities

ROOT = Process(0, 0, frozenset(), frozenset({"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"}))
NOBODY = Process(65532, 65532)
NOBODY_CHOWN = Process(65532, 65532, capabilities=frozenset({"CHOWN"}))
NOBODY_IN_APP_GROUP = Process(65532, 65532, groups=frozenset({23456}))


@pytest.mark.parametrize(
    ("owner", "process", "setting", "said"),
    [
        (Ownership(), NOBODY, None, None),
        (Ownership(uid=12345, gid=23456), ROOT, None, None),
        (Ownership(uid=12345), NOBODY, "uid", "without the CHOWN capability"),
        (Ownership(uid=65532), NOBODY, None, None),
        (Ownership(gid=23456), NOBODY, "gid", "is not in group 23456"),
        (Ownership(gid=23456, private_mode=0o640), NOBODY_IN_APP_GROUP, None, None),
        (Ownership(uid=12345, gid=23456), NOBODY_CHOWN, "key_mode", "unable to read its own"),
        (Ownership(uid=12345, gid=65532, private_mode=0o640), NOBODY_CHOWN, None, None),
        (Ownership(uid=12345, gid=65532, file_mode=0o600, private_mode=0o640), NOBODY_CHOWN,
         "file_mode", "certificate files"),
        (Ownership(private_mode=0o000), ROOT, "key_mode", "not let even the files' owner"),
        (Ownership(private_mode=0o040), NOBODY, "key_mode", "not let even the files' owner"),
        (Ownership(dir_mode=0o300), NOBODY, "dir_mode", "list and enter its own version"),
        (Ownership(dir_mode=0o300), ROOT, None, None),
    ],
    ids=[
        "defaults",
        "root gives files to the app",
        "another uid without CHOWN",
        "its own uid needs no CHOWN",
        "a group it is not in, without CHOWN",
        "a group it is in, key 0640",
        "CHOWN to the app's uid and gid, key 0600: cannot read it back",
        "CHOWN to the app's uid and its own gid, key 0640",
        "certificates the process cannot read back",
        "key mode 0000",
        "key readable by the group only, not the owner",
        "version folders it cannot enter",
        "root enters anything",
    ],
)  # fmt: skip
def test_what_the_process_cannot_carry_out_is_refused(owner, process, setting, said):
    found = ownership_problem(owner, process)
    if setting is None:
        assert found is None
    else:
        assert found is not None and found[0] == setting and said in found[1], found


def test_capabilities_are_read_from_the_kernel_status_text():
    status = "Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t0000000000000005\n"
    assert effective_capabilities(status) == {"CHOWN", "DAC_READ_SEARCH"}
    assert effective_capabilities("Name:\tx\n") == frozenset()


def test_the_current_process_is_described():
    me = current_process()
    assert me.uid >= 0 and me.in_group(me.gid)
