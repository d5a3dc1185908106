"""The principals the tests act as: one module, so every test means the same people by
ADMIN or SUPPORT, and an assertion about who did something names the constant
(`ADMIN.name`), never a copy of the string."""

from __future__ import annotations

from core.base.permissions import Principal, Role

ADMIN = Principal(name="ann", role=Role.ADMIN)
ADMIN_2 = Principal(name="ben", role=Role.ADMIN)  # a second admin: the checker of ADMIN's requests
SUPPORT = Principal(name="sam", role=Role.SUPPORT)
QA = Principal(name="quinn", role=Role.QA)

# maker-checker tests name the parts the admins play
MAKER = Principal(name="maker", role=Role.ADMIN)
CHECKER = Principal(name="checker", role=Role.ADMIN)
CHECKER_2 = Principal(name="checker2", role=Role.ADMIN)
