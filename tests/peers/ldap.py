"""A private OpenLDAP directory (Debian's slapd as a user process) for the LDAP auth tests.

Each :class:`Directory` writes its own ``slapd.conf`` (``back_mdb`` with the ``memberof``
overlay, so a person's ``memberOf`` follows the groups they are put in), seeds the tree with
``slapadd``, serves plain LDAP (StartTLS offered) and LDAPS on free loopback ports with a
self-signed certificate, and is changed at run time through the root DN, as a directory's admin
would change it: people added, moved between groups, deleted.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import ldap3

from valt_core.tls import self_signed_certificate

from .nats import free_port
from .process import stop_process

SUFFIX = "dc=valt,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "directory-admin-secret"  # slapd.conf takes no spaces in rootpw
SERVICE_DN = f"cn=valt-svc,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service account secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
access to attrs=userPassword by self read by anonymous auth by * none
access to * by users read by * none
"""

SEED = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: valt
o: Valt test directory

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: {SERVICE_DN}
objectClass: person
cn: valt-svc
sn: service
userPassword: {SERVICE_PASSWORD}
"""


class Directory:
    """A running slapd; ``url`` is plain LDAP, ``ldaps_url`` LDAP over TLS, ``ca_file`` trusts it."""

    def __init__(self, root: Path) -> None:
        if shutil.which("slapd", path="/usr/sbin:/usr/bin") is None:
            raise RuntimeError("slapd is not installed: run scripts/peers")
        self.root = root
        (root / "db").mkdir(parents=True)
        cert = self_signed_certificate(root / "tls", ("127.0.0.1", "localhost"))
        self.ca_file = cert.cert_path
        conf = root / "slapd.conf"
        conf.write_text(CONF.format(dir=root, cert=cert.cert_path, key=cert.key_path, suffix=SUFFIX,
                                    root_dn=ROOT_DN, root_password=ROOT_PASSWORD))
        (root / "seed.ldif").write_text(SEED)
        seeded = subprocess.run(["/usr/sbin/slapadd", "-q", "-f", str(conf), "-l", str(root / "seed.ldif")],
                                capture_output=True, text=True)
        if seeded.returncode != 0:
            raise RuntimeError(f"slapadd could not seed the directory: {seeded.stderr[-2000:]}")
        self.port, self.ldaps_port = free_port(), free_port()
        # By name: ldap3 matches a certificate to host names only, never to an IP address.
        self.url = f"ldap://localhost:{self.port}"
        self.ldaps_url = f"ldaps://localhost:{self.ldaps_port}"
        listen = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.ldaps_port}/"
        self.proc = subprocess.Popen(
            ["/usr/sbin/slapd", "-f", str(conf), "-h", listen, "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    self.stop()
                    raise RuntimeError(f"slapd did not start: {err[-2000:]}") from None
                time.sleep(0.05)

    def admin(self) -> ldap3.Connection:
        """A connection bound as the directory's root DN."""
        return ldap3.Connection(ldap3.Server(self.url), ROOT_DN, ROOT_PASSWORD, auto_bind=True, raise_exceptions=True)

    def add_person(self, uid: str, password: str, name: str = "", mail: str = "") -> str:
        """Add a person under ``ou=people``; their DN."""
        dn = f"uid={ldap3.utils.dn.escape_rdn(uid)},{PEOPLE}"
        attrs = {"cn": name or uid, "sn": (name or uid).split()[-1], "uid": uid, "userPassword": password}
        if mail:
            attrs["mail"] = mail
        with self.admin() as c:
            c.add(dn, ["inetOrgPerson"], attrs)
        return dn

    def add_group(self, cn: str, *member_dns: str) -> str:
        """Add a group (groupOfNames) with these members; its DN."""
        dn = f"cn={cn},{GROUPS}"
        with self.admin() as c:
            # groupOfNames needs a member: an empty group holds the group itself, as is usual.
            c.add(dn, ["groupOfNames"], {"cn": cn, "member": list(member_dns) or [dn]})
        return dn

    def set_members(self, group_dn: str, *member_dns: str) -> None:
        """Make the group's members exactly these."""
        with self.admin() as c:
            c.modify(group_dn, {"member": [(ldap3.MODIFY_REPLACE, list(member_dns) or [group_dn])]})

    def delete(self, dn: str) -> None:
        """Delete an entry (a person who left)."""
        with self.admin() as c:
            c.delete(dn)

    def stop(self) -> None:
        """Stop slapd."""
        stop_process(self.proc)
