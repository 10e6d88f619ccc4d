"""Valt's ``ldap`` auth plugin: people sign in with their directory password; directory groups
become Valt groups; a scheduled sync disables people who left the directory."""
