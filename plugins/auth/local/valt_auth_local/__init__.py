"""Valt's ``local`` auth plugin: users and argon2id password hashes kept in Valt's database."""
