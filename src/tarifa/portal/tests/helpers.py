"""Test helpers: a portal session or token for a portal user without typing a password (each
Argon2 check costs up to a second on a busy machine)."""

from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from rest_framework.test import APIClient

from tarifa.portal import auth, services


def portal_client(user) -> Client:
    store = SessionStore()
    store[auth.USER_KEY] = str(user.pk)
    store[auth.HASH_KEY] = auth._password_hash(user)
    store.save()
    client = Client()
    client.cookies[auth.COOKIE] = store.session_key
    return client


def portal_api(user) -> APIClient:
    _token, raw = services.issue_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client
