"""Settings of the ``ldap`` auth backend (``[auth.backend_options.ldap]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class LdapAuthConfig(BaseModel):
    """Where the directory is, how people are found in it, and how its groups map to Valt's."""

    model_config = ConfigDict(extra="forbid")
    urls: list[str] = Field(
        min_length=1, description="Directory servers, tried in order: `ldap://host:389` or `ldaps://host:636`.")
    start_tls: bool = Field(False, description="Upgrade `ldap://` connections with StartTLS before binding.")
    ca_file: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the directory's certificate; unset: the system's.")
    bind_dn: str | None = Field(
        None, description="The service account that searches for people (and runs the sync); unset: people "
                          "are bound directly by `user_dn_template`.")
    bind_password: SecretStr | None = Field(None, description="The service account's password.")
    user_dn_template: str | None = Field(
        None, description="A person's DN with `{username}` in it (`uid={username},ou=people,dc=example,dc=org`), "
                          "for directories without a service account.")
    user_base: str = Field("", description="Where people are searched for (`ou=people,dc=example,dc=org`).")
    user_filter: str = Field(
        "(&(objectClass=inetOrgPerson)(uid={username}))",
        description="The search filter; `{username}` is replaced by the name typed, escaped (RFC 4515). "
                    "Active Directory: `(&(objectClass=user)(sAMAccountName={username}))`.")
    username_attribute: str = Field(
        "uid", description="The attribute holding the user name (`sAMAccountName` in Active Directory); its "
                           "value, as the directory spells it, becomes the Valt user name.")
    display_name_attribute: str = Field("cn", description="The attribute shown as the person's name.")
    email_attribute: str = Field("mail", description="The attribute holding the person's e-mail address.")
    group_attribute: str = Field(
        "memberOf", description="The attribute of a person listing the DNs of their groups (OpenLDAP's memberof "
                                "overlay and Active Directory both keep `memberOf`).")
    group_map: dict[str, str] = Field(
        default_factory=dict,
        description="Directory group DN -> Valt group name. Compared without regard to case or spaces after "
                    "commas. Empty: Valt's groups are managed in Valt only, and new people join Viewers.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Connect and answer timeout of each directory request.")

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.lower().startswith(("ldap://", "ldaps://")):
                raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL")
        return urls

    @model_validator(mode="after")
    def _how_people_are_found(self) -> "LdapAuthConfig":
        if self.bind_dn is None and self.user_dn_template is None:
            raise ValueError("set bind_dn and bind_password (search for people) or user_dn_template (bind directly)")
        if self.bind_dn is not None and (self.bind_password is None or not self.user_base):
            raise ValueError("bind_dn needs bind_password and user_base")
        if self.user_dn_template is not None and "{username}" not in self.user_dn_template:
            raise ValueError("user_dn_template must contain {username}")
        if "{username}" not in self.user_filter:
            raise ValueError("user_filter must contain {username}")
        if self.start_tls and all(u.lower().startswith("ldaps://") for u in self.urls):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is TLS already")
        return self
