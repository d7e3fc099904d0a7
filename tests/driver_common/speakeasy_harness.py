"""Runs the cross-built tdinal.sys in the speakeasy kernel emulator (PyPI speakeasy-emulator),
the way `speakeasy -t tdinal.sys -o report.json --no-mp` does, with three additions the driver
needs and speakeasy 1.5.11 lacks. Each is a model of the documented routine, written for this
test, and each is marked as such in the report (argument 0 of the call starts "harness:" only
where noted):

* ZwEnumerateValueKey: not implemented by speakeasy. Modelled for KeyValueFullInformation over
  the values speakeasy's registry holds for the handle (from the emulator configuration):
  STATUS_NO_MORE_ENTRIES past the last value, STATUS_BUFFER_OVERFLOW with the needed length when
  the buffer is too small, else the record (TitleIndex, Type, DataOffset, DataLength,
  NameLength, Name, data at a 4-aligned offset).
* ZwSetSecurityObject: not implemented by speakeasy. Modelled as success for a self-relative
  descriptor (SE_SELF_RELATIVE set), STATUS_INVALID_SECURITY_DESCR otherwise; the descriptor's
  bytes (header through the end of its last part) replace argument 2 in the report, as hex, so
  the test can compare what the driver really applied with the SDDL's binary form.
* ZwOpenKey: speakeasy's handler fails inside Python for a key that does not exist. Scenario
  "no-parameters-key" answers STATUS_OBJECT_NAME_NOT_FOUND for the service's Parameters key, as
  Windows does when the key is absent; other opens go to speakeasy's handler.

Scenarios: "parameters" adds values to the Parameters key (the configuration below; the Rust
test checks the driver's traces against it), "no-parameters-key" removes the key.

Usage: python speakeasy_harness.py SCENARIO DRIVER.sys REPORT.json
"""
import json
import os
import struct
import sys

import speakeasy
from speakeasy import Speakeasy

STATUS_SUCCESS = 0
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_NO_MORE_ENTRIES = 0x8000001A
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_INVALID_SECURITY_DESCR = 0xC0000079

KEY_VALUE_FULL_INFORMATION = 1
REG_TYPES = {"REG_SZ": 1, "REG_EXPAND_SZ": 2, "REG_BINARY": 3, "REG_DWORD": 4, "REG_QWORD": 11}

PARAMETERS_KEY = "HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\tdinal\\Parameters"

# The values of the "parameters" scenario: two DWORDs, two strings, an unknown name, a bad value.
PARAMETERS = [
    {"name": "sock_timeout", "type": "REG_DWORD", "data": "0x64"},
    {"name": "accept", "type": "REG_SZ", "data": "all"},
    {"name": "Keepalive", "type": "REG_DWORD", "data": "0"},
    {"name": "protocol", "type": "REG_SZ", "data": "2"},
    {"name": "sock_timout", "type": "REG_DWORD", "data": "5"},
    {"name": "accept_port", "type": "REG_DWORD", "data": "0"},
]


def value_bytes(vtype, data):
    """The registry data of a value as Windows stores it."""
    if vtype in (1, 2):
        return str(data).encode("utf-16le") + b"\0\0"
    if vtype == 4:
        return struct.pack("<I", int(data, 0) if isinstance(data, str) else int(data))
    if vtype == 11:
        return struct.pack("<Q", int(data, 0) if isinstance(data, str) else int(data))
    return data if isinstance(data, bytes) else str(data).encode()


def hook_enumerate_value_key(emu, api_name, func, argv):
    handle, index, info_class, buf, length, result_length = argv
    key = emu.reg_get_key(handle)
    if key is None:
        return STATUS_INVALID_HANDLE
    if info_class != KEY_VALUE_FULL_INFORMATION:
        return STATUS_INVALID_PARAMETER
    values = key.get_values()
    if index >= len(values):
        return STATUS_NO_MORE_ENTRIES
    v = values[index]
    vtype = v.get_type()
    vtype = REG_TYPES.get(vtype, vtype) if isinstance(vtype, str) else vtype
    name = v.get_name().encode("utf-16le")
    data = value_bytes(vtype, v.get_data())
    data_offset = (20 + len(name) + 3) & ~3
    record = struct.pack("<IIIII", 0, vtype, data_offset, len(data), len(name)) + name
    record = record.ljust(data_offset, b"\0") + data
    argv[1] = "%d (%s)" % (index, v.get_name())
    if result_length:
        emu.mem_write(result_length, struct.pack("<I", len(record)))
    if len(record) > length:
        return STATUS_BUFFER_OVERFLOW
    emu.mem_write(buf, record)
    return STATUS_SUCCESS


def self_relative_length(emu, sd):
    rev, sbz1, control, owner, group, sacl, dacl = struct.unpack("<BBHIIII", emu.mem_read(sd, 20))
    end = 20
    for off in (owner, group):
        if off:
            count = emu.mem_read(sd + off + 1, 1)[0]
            end = max(end, off + 8 + 4 * count)
    for off in (sacl, dacl):
        if off:
            (acl_size,) = struct.unpack("<H", emu.mem_read(sd + off + 2, 2))
            end = max(end, off + acl_size)
    return control, end


def hook_set_security_object(emu, api_name, func, argv):
    handle, info, sd = argv
    control, length = self_relative_length(emu, sd)
    if not control & 0x8000:
        return STATUS_INVALID_SECURITY_DESCR
    argv[2] = "sd:" + emu.mem_read(sd, length).hex()
    return STATUS_SUCCESS


def make_open_key_hook(missing):
    def hook_open_key(emu, api_name, func, argv):
        phandle, access, oa = argv
        # OBJECT_ATTRIBUTES.ObjectName (offset 0x10) -> UNICODE_STRING.
        (name_ptr,) = struct.unpack("<Q", emu.mem_read(oa + 0x10, 8))
        length, _, buf = struct.unpack("<HHxxxxQ", emu.mem_read(name_ptr, 16))
        name = emu.mem_read(buf, length).decode("utf-16le")
        if missing and name.lower().endswith("\\tdinal\\parameters"):
            argv[2] = name
            if phandle:
                emu.mem_write(phandle, struct.pack("<Q", 0))
            return STATUS_OBJECT_NAME_NOT_FOUND
        return func(argv)

    return hook_open_key


def main():
    scenario, driver, report = sys.argv[1:4]
    cfg_path = os.path.join(os.path.dirname(speakeasy.__file__), "configs", "default.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if scenario == "parameters":
        cfg["registry"]["keys"].append({"path": PARAMETERS_KEY, "values": PARAMETERS})
    elif scenario != "no-parameters-key":
        raise SystemExit("unknown scenario " + scenario)

    se = Speakeasy(config=cfg)
    se.add_api_hook(hook_enumerate_value_key, "ntoskrnl", "ZwEnumerateValueKey", argc=6)
    se.add_api_hook(hook_set_security_object, "ntoskrnl", "ZwSetSecurityObject", argc=3)
    se.add_api_hook(make_open_key_hook(scenario == "no-parameters-key"), "ntoskrnl", "ZwOpenKey", argc=3)
    try:
        module = se.load_module(driver)
        se.run_module(module, all_entrypoints=True)
    finally:
        with open(report, "w") as f:
            f.write(se.get_json_report())


if __name__ == "__main__":
    main()
