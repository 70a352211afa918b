"""A local stand-in for the Entra token endpoint and Microsoft Graph, served over real HTTP on
loopback by a threaded http.server.

msal refuses http authorities (research/graph-api.md §0.1, §1.6), so the portal keeps its
real https URLs and the tests give it a requests session that sends those two hosts to this
stub (StubSession), and refuses any other host: no test can reach the internet.

The stub keeps a small directory (users, groups, role definitions, eligibilities, active
assignments, policies), pages every collection through absolute @odata.nextLink URLs on the
real Graph host (as Graph does), honours $select on users, carries out adminAssign and
adminRemove (answering RoleAssignmentExists / RoleAssignmentDoesNotExist like Entra), and
records every request it received. Faults (429 with or without Retry-After, 5xx, slow
answers) are queued per route; stop() and start() take it off the network and back on the
same port (connection refused in between).
"""

import itertools
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "stub-client-secret-Zq8~never-log-me"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com"
ARM = "https://management.azure.com"
ASSIGNMENT_INSTANCES = "roleAssignmentScheduleInstances"
ELIGIBILITY_INSTANCES = "roleEligibilityScheduleInstances"


@dataclass
class Received:
    method: str
    path: str
    query: dict
    body: dict | None
    status: int = 0
    headers: dict = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    path: str  # prefix of the path after /v1.0/
    status: int
    headers: dict
    delay: float
    code: str


class GraphStub:
    def __init__(self):
        self.group_pim = GroupPim(self)  # PIM for Groups' routes and data (below)
        self.users: list[dict] = []  # each may carry "_manager" (an object id)
        self.groups: list[dict] = []  # each carries "_members" (object ids)
        self.role_definitions: list[dict] = []
        self.eligibilities: list[dict] = []
        self.assignments: list[dict] = []
        self.policies: dict[str, list[dict]] = {}  # role definition id -> rules
        self.page_size = 100
        self.policy_failure = ""  # a rule name: adminAssign answers PolicyValidationFailed
        # Entra applies schedule requests asynchronously: an accepted request shows in the
        # schedule instances (roleAssignmentScheduleInstances for assignment requests,
        # roleEligibilityScheduleInstances for eligibility requests) from the N-th read of
        # those after it (0: at once; None: never).
        self.apply_after_reads: int | None = 0
        self.deny_sign_in_activity = False  # 403 without AuditLog.Read.All (or Entra ID P1)
        self._applying: list[list] = []  # [reads left, change, instances path]
        self.certificate = None  # a cryptography x509 certificate registered for the app
        self.received: list[Received] = []
        self.token_requests = 0
        self.tokens: set[str] = set()
        self.token_scopes: dict[str, str] = {}  # token -> the scope it was issued for
        self.arm = ArmStub(self)  # Azure Resource Manager's PIM routes (below)
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # --- Serving ---------------------------------------------------------------------------

    def start(self) -> "GraphStub":
        server = _Server(("127.0.0.1", self.port), _handler(self))
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- Test helpers --------------------------------------------------------------------------

    def fail(self, method, path, status, *, headers=None, times=1, delay=0.0, code="") -> None:
        """The next `times` matching requests get `status` (after `delay` seconds)."""
        code = code or {429: "TooManyRequests", 503: "serviceNotAvailable"}.get(status, "UnknownError")
        for _ in range(times):
            self._faults.append(Fault(method, path, status, headers or {}, delay, code))

    def requests_to(self, method: str, path: str) -> list[Received]:
        return [r for r in self.received if r.method == method and r.path.startswith(path)]

    def graph_calls(self) -> list[Received]:
        return [r for r in self.received if r.path.startswith("/v1.0/")]

    def add_assignment(self, principal_id, role_id, scope="/", **extra) -> dict:
        instance = {
            "id": f"instance-{next(self._ids)}",
            "principalId": principal_id,
            "roleDefinitionId": role_id,
            "directoryScopeId": scope,
            "appScopeId": None,
            "startDateTime": "2026-01-01T00:00:00Z",
            "endDateTime": None,
            "assignmentType": "Assigned",
            "memberType": "Direct",
            **extra,
        }
        self.assignments.append(instance)
        return instance

    # --- Routes ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body, headers: dict) -> tuple[int, dict, dict]:
        if path.startswith(f"/{TENANT}/"):
            return self._login(method, path, body)
        if path.startswith(("/subscriptions/", "/providers/")):
            return self.arm.handle(method, path, query, body, headers)
        if not path.startswith("/v1.0/"):
            return 404, {}, {"error": {"code": "NotFound", "message": path}}
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens or self.token_scopes.get(token) != f"{GRAPH}/.default":
            return 401, {}, _error("InvalidAuthenticationToken", "Access token is empty or not valid.")
        route = path.removeprefix("/v1.0/")
        fault = self._take_fault(method, route)
        if fault is not None:
            time.sleep(fault.delay)
            return fault.status, fault.headers, _error(fault.code, "Injected by the test.")
        if self.group_pim.serves(route, query):
            return self.group_pim.handle(method, route, query, body or {})
        if method == "POST" and route == "roleManagement/directory/roleAssignmentScheduleRequests":
            return self._schedule_request(body or {})
        if method == "POST" and route == "roleManagement/directory/roleEligibilityScheduleRequests":
            return self._eligibility_request(body or {})
        if method == "GET":
            return self._read(route, query, headers)
        return 405, {}, _error("BadRequest", "Method not allowed.")

    def _take_fault(self, method, route) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.method == method and route.startswith(fault.path):
                    return self._faults.pop(index)
        return None

    def _login(self, method, path, form) -> tuple[int, dict, dict]:
        if method == "GET" and path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            return (
                200,
                {},
                {
                    "token_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/authorize",
                    "issuer": f"{LOGIN}/{TENANT}/v2.0",
                },
            )
        if method == "POST" and path == f"/{TENANT}/oauth2/v2.0/token":
            self.token_requests += 1
            form = form or {}
            good = (
                form.get("grant_type") == "client_credentials"
                and form.get("client_id") == CLIENT_ID
                and self._credential_ok(form)
                and form.get("scope") in (f"{GRAPH}/.default", f"{ARM}/.default")
            )
            if not good:
                return (
                    401,
                    {},
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the "
                        "secret being sent in the request is the client secret value.\r\nTrace ID: x",
                        "error_codes": [7000215],
                    },
                )
            token = f"stub-access-token-{next(self._ids)}"
            self.tokens.add(token)
            self.token_scopes[token] = form["scope"]
            return (
                200,
                {},
                {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token},
            )
        return 404, {}, {"error": "not_found"}

    def _credential_ok(self, form: dict) -> bool:
        """The client secret, or a client assertion signed with the registered certificate."""
        if "client_assertion" not in form:
            return form.get("client_secret") == CLIENT_SECRET
        if self.certificate is None:
            return False
        import jwt

        try:
            claims = jwt.decode(
                form["client_assertion"],
                self.certificate.public_key(),
                algorithms=["RS256", "PS256"],
                audience=f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
            )
        except jwt.InvalidTokenError:
            return False
        return claims.get("iss") == CLIENT_ID and claims.get("sub") == CLIENT_ID

    def _read(self, route: str, query: dict, headers: dict) -> tuple[int, dict, dict]:
        directory = "roleManagement/directory/"
        if route == "users":
            if "signInActivity" in query.get("$select", ""):
                if self.deny_sign_in_activity:
                    return 403, {}, _error("Authorization_RequestDenied", "Insufficient privileges.")
                if int(query.get("$top", 100)) > 500:
                    return 400, {}, _error("Request_UnsupportedQuery", "$top over 500 with signInActivity.")
            items = [self._user(user, query) for user in self.users]
        elif route == "groups":
            if query.get("$filter") != "isAssignableToRole eq true":
                return 400, {}, _error("Request_BadRequest", "Expected the isAssignableToRole filter.")
            items = [_public(group) for group in self.groups if group.get("isAssignableToRole")]
        elif route.startswith("groups/") and route.endswith("/members"):
            group = next((g for g in self.groups if g["id"] == route.split("/")[1]), None)
            if group is None:
                return 404, {}, _error("Request_ResourceNotFound", "No such group.")
            items = [{"@odata.type": "#microsoft.graph.user", "id": member} for member in group["_members"]]
        elif route == directory + "roleDefinitions":
            items = self.role_definitions
        elif route.startswith(directory + "roleDefinitions/"):
            wanted = route.rsplit("/", 1)[1]
            found = next((d for d in self.role_definitions if d["id"] == wanted), None)
            if found is None:
                return 404, {}, _error("Request_ResourceNotFound", "No such role definition.")
            return 200, {}, found
        elif route in (directory + ELIGIBILITY_INSTANCES, directory + ASSIGNMENT_INSTANCES):
            eligibility = route.endswith(ELIGIBILITY_INSTANCES)
            self._apply_due_changes(ELIGIBILITY_INSTANCES if eligibility else ASSIGNMENT_INSTANCES)
            try:
                items = _filtered(
                    self.eligibilities if eligibility else self.assignments, query.get("$filter", "")
                )
            except ValueError as error:
                return 400, {}, _error("BadRequest", f"Invalid filter clause: {error}")
            if "$select" in query:
                wanted = set(query["$select"].split(","))
                items = [{k: v for k, v in i.items() if k in wanted} for i in items]
        elif route == "policies/roleManagementPolicyAssignments":
            wanted = "scopeId eq '/' and scopeType eq 'DirectoryRole'"
            if query.get("$filter") != wanted:
                return 400, {}, _error("BadRequest", "A filter on scopeId and scopeType is required.")
            items = [
                self._policy_assignment(role_id, rules, query) for role_id, rules in self.policies.items()
            ]
        else:
            return 404, {}, _error("Request_ResourceNotFound", f"No route {route}.")
        return 200, {}, self._page(route, items, query)

    def _page(self, route, items, query) -> dict:
        start = int(query.get("$skiptoken", "0"))
        size = min(int(query.get("$top", self.page_size)), self.page_size)
        page = {"@odata.context": f"{GRAPH}/v1.0/$metadata#{route}", "value": items[start : start + size]}
        if start + size < len(items):
            rest = {key: value for key, value in query.items() if key != "$skiptoken"}
            page["@odata.nextLink"] = (
                f"{GRAPH}/v1.0/{route}?{urlencode({**rest, '$skiptoken': start + size})}"
            )
        return page

    def _user(self, user: dict, query: dict) -> dict:
        selected = set(query.get("$select", "").split(",")) - {""}
        shown = {k: v for k, v in _public(user).items() if not selected or k in selected or k == "id"}
        if query.get("$expand", "").startswith("manager"):
            manager = user.get("_manager")
            shown["manager"] = {"@odata.type": "#microsoft.graph.user", "id": manager} if manager else None
        return shown

    def _policy_assignment(self, role_id: str, rules: list, query: dict) -> dict:
        assignment = {
            "id": f"DirectoryRole_{TENANT}_policy-{role_id}_{role_id}",
            "policyId": f"DirectoryRole_{TENANT}_policy-{role_id}",
            "scopeId": "/",
            "scopeType": "DirectoryRole",
            "roleDefinitionId": role_id,
        }
        if query.get("$expand") == "policy($expand=rules)":
            assignment["policy"] = {"id": assignment["policyId"], "rules": rules}
        return assignment

    def _schedule_request(self, body: dict) -> tuple[int, dict, dict]:
        key = (body.get("principalId"), body.get("roleDefinitionId"), body.get("directoryScopeId"))
        if None in key or not body.get("action"):
            return (
                400,
                {},
                _error("BadRequest", "principalId, roleDefinitionId and directoryScopeId are required."),
            )
        with self._lock:
            existing = [
                a
                for a in self.assignments
                if (a["principalId"], a["roleDefinitionId"], a["directoryScopeId"]) == key
            ]
            request_id = f"request-{next(self._ids)}"
            if body["action"] == "adminAssign":
                if self.policy_failure:
                    message = (
                        f"The following policy rules failed: {self.policy_failure} - refused by the stub."
                    )
                    return 400, {}, _error("RoleAssignmentRequestPolicyValidationFailed", message)
                if existing:
                    return 400, {}, _error("RoleAssignmentExists", "The Role assignment already exists.")
                expiration = body.get("scheduleInfo", {}).get("expiration", {})
                schedule_id = f"schedule-{next(self._ids)}"
                self._apply(
                    lambda: self.add_assignment(
                        *key,
                        startDateTime=body["scheduleInfo"]["startDateTime"],
                        endDateTime=expiration.get("endDateTime"),
                        roleAssignmentScheduleId=schedule_id,
                    )
                )
                return (
                    201,
                    {},
                    {
                        "id": request_id,
                        "status": "Provisioned",
                        "action": "adminAssign",
                        "targetScheduleId": schedule_id,
                    },
                )
            if body["action"] == "adminRemove":
                if not existing:
                    return (
                        400,
                        {},
                        _error("RoleAssignmentDoesNotExist", "The Role assignment does not exist."),
                    )
                gone = existing[0]
                self._apply(lambda: gone in self.assignments and self.assignments.remove(gone))
                return (
                    201,
                    {},
                    {
                        "id": request_id,
                        "status": "Revoked",
                        "action": "adminRemove",
                        "targetScheduleId": None,
                    },
                )
        return 400, {}, _error("BadRequest", f"Unsupported action {body['action']}.")

    def _eligibility_request(self, body: dict) -> tuple[int, dict, dict]:
        """adminAssign, adminUpdate, adminExtend, adminRenew and adminRemove on eligibilities,
        answered as Entra does (RoleAssignmentExists / RoleAssignmentDoesNotExist)."""
        key = (body.get("principalId"), body.get("roleDefinitionId"), body.get("directoryScopeId"))
        action = body.get("action")
        if None in key or not action:
            return (
                400,
                {},
                _error("BadRequest", "principalId, roleDefinitionId and directoryScopeId are required."),
            )
        with self._lock:
            existing = [
                e
                for e in self.eligibilities
                if (e["principalId"], e["roleDefinitionId"], e["directoryScopeId"]) == key
            ]
            request_id = f"eligibility-request-{next(self._ids)}"
            schedule = body.get("scheduleInfo") or {}
            end = (schedule.get("expiration") or {}).get("endDateTime")
            if action == "adminRemove":
                if not existing:
                    return (
                        400,
                        {},
                        _error("RoleAssignmentDoesNotExist", "The Role assignment does not exist."),
                    )
                gone = existing[0]
                self._apply(
                    lambda: gone in self.eligibilities and self.eligibilities.remove(gone),
                    ELIGIBILITY_INSTANCES,
                )
                return (
                    201,
                    {},
                    {"id": request_id, "status": "Revoked", "action": action, "targetScheduleId": None},
                )
            if action == "adminAssign":
                if existing:
                    return 400, {}, _error("RoleAssignmentExists", "The Role assignment already exists.")
                suffix = next(self._ids)
                instance = {
                    "id": f"eligibility-{suffix}",
                    "principalId": key[0],
                    "roleDefinitionId": key[1],
                    "directoryScopeId": key[2],
                    "appScopeId": None,
                    "startDateTime": schedule.get("startDateTime"),
                    "endDateTime": end,
                    "memberType": "Direct",
                    "roleEligibilityScheduleId": f"schedule-{suffix}",
                }
                self._apply(lambda: self.eligibilities.append(instance), ELIGIBILITY_INSTANCES)
                return (
                    201,
                    {},
                    {
                        "id": request_id,
                        "status": "Provisioned",
                        "action": action,
                        "targetScheduleId": f"schedule-{suffix}",
                    },
                )
            if action in ("adminUpdate", "adminExtend", "adminRenew"):
                if not existing:
                    return (
                        400,
                        {},
                        _error("RoleAssignmentDoesNotExist", "The Role assignment does not exist."),
                    )
                changed = existing[0]
                self._apply(lambda: changed.update(endDateTime=end), ELIGIBILITY_INSTANCES)
                return (
                    201,
                    {},
                    {
                        "id": request_id,
                        "status": "Provisioned",
                        "action": action,
                        "targetScheduleId": existing[0]["roleEligibilityScheduleId"],
                    },
                )
        return 400, {}, _error("BadRequest", f"Unsupported action {action}.")

    def _apply(self, change, instances: str = "") -> None:
        """Carry out an accepted change now, later (after some reads of its instances) or never."""
        if self.apply_after_reads == 0:
            change()
        elif self.apply_after_reads is not None:
            self._applying.append([self.apply_after_reads, change, instances or ASSIGNMENT_INSTANCES])

    def _apply_due_changes(self, instances: str) -> None:
        with self._lock:
            for pending in list(self._applying):
                if pending[2] != instances:
                    continue
                pending[0] -= 1
                if pending[0] <= 0:
                    self._applying.remove(pending)
                    pending[1]()


def _filtered(items: list[dict], odata_filter: str) -> list[dict]:
    """Graph's `eq` clauses joined by `and` (string literals single-quoted, quotes doubled)."""
    if not odata_filter:
        return items
    wanted = {}
    for clause in odata_filter.split(" and "):
        name, _, literal = clause.partition(" eq ")
        if not (literal.startswith("'") and literal.endswith("'") and len(literal) >= 2) or not name:
            raise ValueError(clause)
        wanted[name.strip()] = literal[1:-1].replace("''", "'")
    return [item for item in items if all(item.get(name) == value for name, value in wanted.items())]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up (timeout)
            super().handle_error(request, client_address)


def _public(item: dict) -> dict:
    return {key: value for key, value in item.items() if not key.startswith("_")}


def _error(code: str, message: str) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": "stub", "date": "2026-01-01T00:00:00"},
        }
    }


def _handler(stub: GraphStub):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PUT(self):
            self._serve("PUT")

        def _serve(self, method):
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = None
            if raw:
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw)
                else:
                    body = {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
            headers = {key.lower(): value for key, value in self.headers.items()}
            record = Received(method, parts.path, query, body, headers=headers)
            stub.received.append(record)
            status, extra_headers, payload = stub.handle(method, parts.path, query, body, headers)
            record.status = status
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # quiet
            pass

    return Handler


class StubSession(requests.Session):
    """Sends the real Entra and Graph hosts to the stub; refuses every other host."""

    def __init__(self, stub: GraphStub | None):
        super().__init__()
        self.trust_env = False  # no proxies or CA bundles from the environment
        self.stub = stub

    def request(self, method, url, *args, **kwargs):
        for real in (LOGIN, GRAPH, ARM):
            if self.stub is not None and url.startswith(real + "/"):
                url = self.stub.base_url + url[len(real) :]
                break
        else:
            raise AssertionError(f"A test tried to reach {url}: only the stub may be called.")
        return super().request(method, url, *args, **kwargs)


# --- Azure Resource Manager ----------------------------------------------------------------------

ARM_API_VERSION = "2020-10-01"
AUTHORIZATION = "/providers/Microsoft.Authorization/"


class ArmStub:
    """ARM's PIM routes under {scope}/providers/Microsoft.Authorization/: PUT of role
    assignment and eligibility schedule requests (by name: the same name again answers the
    request it made, nothing twice), and the schedule instances at, above or below a scope
    (unfiltered, atScope() or principalId eq), paged through absolute nextLinks on ARM's host.
    A token must be issued for ARM's scope (a Graph token is refused, as ARM does), and every
    call carries api-version=2020-10-01. Accepted assignment requests show in the instances
    when GraphStub.apply_after_reads says; faults are GraphStub.fail's, by the full path."""

    def __init__(self, stub: GraphStub):
        self.stub = stub
        self.eligibilities: list[dict] = []
        self.assignments: list[dict] = []
        self.requests: dict[tuple[str, str, str], dict] = {}  # (scope, collection, name) -> answer
        self.policy_failure = ""  # rule names, e.g. '"ExpirationRule","JustificationRule"'
        self.forbidden: set[str] = set()  # scopes where the app has no role (403 AuthorizationFailed)
        self.lose_answers = 0  # the next N PUTs are carried out, then answered 500 (answer lost)

    def handle(self, method, path, query, body, headers) -> tuple[int, dict, dict]:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.stub.tokens:
            return 401, {}, _error("AuthenticationFailed", "Authentication failed.")
        if self.stub.token_scopes.get(token) != f"{ARM}/.default":
            return (
                401,
                {},
                _error(
                    "InvalidAuthenticationTokenAudience",
                    "The access token has been obtained for wrong audience or resource.",
                ),
            )
        if query.get("api-version") != ARM_API_VERSION:
            return 400, {}, _error("InvalidApiVersionParameter", "The api-version is missing or invalid.")
        fault = self.stub._take_fault(method, path)
        if fault is not None:
            time.sleep(fault.delay)
            return fault.status, fault.headers, _error(fault.code, "Injected by the test.")
        scope, found, rest = path.rpartition(AUTHORIZATION)
        if not found or not scope:
            return 404, {}, _error("InvalidResourceType", path)
        if any(_at_or_below(scope, forbidden) for forbidden in self.forbidden):
            message = (
                f"The client '{CLIENT_ID}' does not have authorization to perform action "
                f"'Microsoft.Authorization/{rest.split('/')[0]}/write' over scope '{scope}'."
            )
            return 403, {}, _error("AuthorizationFailed", message)
        collection, _, name = rest.partition("/")
        if (
            method == "PUT"
            and name
            and collection in ("roleAssignmentScheduleRequests", "roleEligibilityScheduleRequests")
        ):
            return self._put(scope, collection, name, (body or {}).get("properties") or {})
        if method == "GET" and not name and collection == "roleAssignmentScheduleInstances":
            self.stub._apply_due_changes("arm:" + collection)
            return self._list(path, scope, self.assignments, query)
        if method == "GET" and not name and collection == "roleEligibilityScheduleInstances":
            self.stub._apply_due_changes("arm:" + collection)
            return self._list(path, scope, self.eligibilities, query)
        return 404, {}, _error("InvalidResourceType", f"No route {method} {path}.")

    # --- Test helpers ---

    def add_assignment(self, principal_id, guid, scope, **properties) -> dict:
        return self._instance(
            self.assignments,
            "roleAssignmentScheduleInstances",
            principal_id,
            guid,
            scope,
            **{"assignmentType": "Assigned", **properties},
        )

    def add_eligibility(self, principal_id, guid, scope, **properties) -> dict:
        return self._instance(
            self.eligibilities, "roleEligibilityScheduleInstances", principal_id, guid, scope, **properties
        )

    def puts(self, collection: str = "") -> list[Received]:
        return [r for r in self.stub.received if r.method == "PUT" and collection in r.path]

    def _instance(self, into, collection, principal_id, guid, scope, **properties) -> dict:
        name = f"{next(self.stub._ids):08d}-0000-4000-8000-000000000000"
        instance = {
            "id": f"{scope}{AUTHORIZATION}{collection}/{name}",
            "name": name,
            "type": f"Microsoft.Authorization/{collection}",
            "properties": {
                "scope": scope,
                "roleDefinitionId": arm_role_definition_id(scope, guid),
                "principalId": principal_id,
                "principalType": "User",
                "memberType": "Direct",
                "status": "Provisioned",
                "startDateTime": "2026-01-01T00:00:00Z",
                "endDateTime": None,
                **properties,
            },
        }
        into.append(instance)
        return instance

    # --- Requests ---

    def _put(self, scope, collection, name, properties) -> tuple[int, dict, dict]:
        with self.stub._lock:
            earlier = self.requests.get((scope.lower(), collection, name))
            if earlier is not None:
                return 201, {}, earlier  # the same request again: nothing happens twice
            status, answer = self._carry_out(scope, collection, name, properties)
            if status == 201:
                self.requests[(scope.lower(), collection, name)] = answer
                if self.lose_answers:
                    self.lose_answers -= 1
                    return 500, {}, _error("InternalServerError", "The answer was lost.")
            return status, {}, answer

    def _carry_out(self, scope, collection, name, properties) -> tuple[int, dict]:
        principal_id = properties.get("principalId")
        definition = str(properties.get("roleDefinitionId") or "")
        request_type = properties.get("requestType")
        if not principal_id or "/roleDefinitions/" not in definition or not request_type:
            return 400, _error(
                "InvalidRequest", "principalId, roleDefinitionId and requestType are required."
            )
        guid = definition.rsplit("/", 1)[1].lower()
        eligibility = collection == "roleEligibilityScheduleRequests"
        store = self.eligibilities if eligibility else self.assignments
        existing = [i for i in store if _same(i, principal_id, guid, scope)]
        expiration = (properties.get("scheduleInfo") or {}).get("expiration") or {}
        if (
            request_type in ("AdminAssign", "AdminUpdate", "AdminExtend", "AdminRenew")
            and self.policy_failure
        ):
            message = f"The following policy rules failed: [{self.policy_failure}]"
            return 400, _error("RoleAssignmentRequestPolicyValidationFailed", message)
        if request_type == "AdminAssign":
            if existing:
                return 400, _error("RoleAssignmentExists", "The Role assignment already exists.")
            add = self.add_eligibility if eligibility else self.add_assignment

            def change():
                add(principal_id, guid, scope, endDateTime=expiration.get("endDateTime"))

            status = "Provisioned"
        elif request_type in ("AdminRemove", "AdminUpdate", "AdminExtend", "AdminRenew"):
            if not existing:
                return 400, _error("RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
            gone = existing[0]
            removing = request_type == "AdminRemove"

            def change():
                if not removing:
                    gone["properties"].update(endDateTime=expiration.get("endDateTime"))
                elif gone in store:
                    store.remove(gone)

            status = "Revoked" if removing else "Provisioned"
        else:
            return 400, _error("InvalidRequest", f"Unsupported requestType {request_type}.")
        instances = "roleEligibilityScheduleInstances" if eligibility else "roleAssignmentScheduleInstances"
        self.stub._apply(change, "arm:" + instances)
        target = "targetRoleEligibilityScheduleId" if eligibility else "targetRoleAssignmentScheduleId"
        return 201, {
            "id": f"{scope}{AUTHORIZATION}{collection}/{name}",
            "name": name,
            "type": f"Microsoft.Authorization/{collection}",
            "properties": {
                **properties,
                "scope": scope,
                "status": status,
                target: f"{scope}{AUTHORIZATION}schedules/{name}",
            },
        }

    # --- Listings ---

    def _list(self, path, scope, items, query) -> tuple[int, dict, dict]:
        wanted = query.get("$filter", "")
        if not wanted:
            chosen = [i for i in items if _related(i["properties"]["scope"], scope)]
        elif wanted == "atScope()":
            chosen = [i for i in items if _at_or_below(scope, i["properties"]["scope"])]
        elif wanted.startswith("principalId eq '") and wanted.endswith("'"):
            principal_id = wanted[len("principalId eq '") : -1]
            chosen = [
                i
                for i in items
                if _related(i["properties"]["scope"], scope)
                and i["properties"]["principalId"] == principal_id
            ]
        else:
            return 400, {}, _error("InvalidFilterParameter", f"Unsupported $filter {wanted}.")
        start = int(query.get("$skiptoken", "0"))
        size = self.stub.page_size
        page: dict = {"value": chosen[start : start + size]}
        if start + size < len(chosen):
            rest = {key: value for key, value in query.items() if key != "$skiptoken"}
            page["nextLink"] = f"{ARM}{path}?{urlencode({**rest, '$skiptoken': start + size})}"
        return 200, {}, page


def arm_role_definition_id(scope: str, guid: str) -> str:
    parts = scope.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return f"/subscriptions/{parts[2]}{AUTHORIZATION}roleDefinitions/{guid}"
    return f"{AUTHORIZATION.rstrip('/')}/roleDefinitions/{guid}"


def _same(instance: dict, principal_id: str, guid: str, scope: str) -> bool:
    properties = instance["properties"]
    return (
        properties["principalId"] == principal_id
        and properties["roleDefinitionId"].rsplit("/", 1)[1].lower() == guid
        and properties["scope"].lower() == scope.lower()
    )


def _at_or_below(scope: str, top: str) -> bool:
    """scope is top or below it (/ is above everything)."""
    scope, top = scope.lower(), top.lower().rstrip("/")
    return not top or scope == top or scope.startswith(top + "/")


def _related(item_scope: str, scope: str) -> bool:
    """At, above or below: what an unfiltered ARM listing at scope returns (a management group
    is taken to be above every subscription)."""
    above = item_scope.startswith("/providers/Microsoft.Management/")
    return above or _at_or_below(item_scope, scope) or _at_or_below(scope, item_scope)


# --- PIM for Groups ------------------------------------------------------------------------------

GROUP_PIM = "identityGovernance/privilegedAccess/group/"
POLICIES = "policies/roleManagementPolicyAssignments"
GROUP_ASSIGNMENTS = "group:assignmentScheduleInstances"  # GraphStub._apply's key for them


class GroupPim:
    """identityGovernance/privilegedAccess/group/: assignment and eligibility schedule
    requests (adminAssign / adminRemove, ...) and their instances, which Graph lists only with
    a $filter on groupId or principalId (400 without it, as Graph). Accepted assignment
    requests show in assignmentScheduleInstances as the stub's apply_after_reads says. Also
    GET groups/{id} (any group, not only role-assignable ones)."""

    def __init__(self, stub: GraphStub):
        self.stub = stub
        self.eligibilities: list[dict] = []
        self.assignments: list[dict] = []
        self.policies: dict[tuple[str, str], list[dict]] = {}  # (group id, access) -> rules

    def serves(self, route: str, query: dict) -> bool:
        group_policy = route == POLICIES and "scopeType eq 'Group'" in query.get("$filter", "")
        return (
            group_policy
            or route.startswith(GROUP_PIM)
            or (route.startswith("groups/") and route.count("/") == 1)
        )

    def add_assignment(self, principal_id, group_id, access="member", **extra) -> dict:
        instance = {
            "id": f"{group_id}_{access}_{next(self.stub._ids)}",
            "principalId": principal_id,
            "groupId": group_id,
            "accessId": access,
            "startDateTime": "2026-01-01T00:00:00Z",
            "endDateTime": None,
            "assignmentType": "assigned",
            "memberType": "direct",
            **extra,
        }
        self.assignments.append(instance)
        return instance

    def add_eligibility(self, principal_id, group_id, access="member", **extra) -> dict:
        instance = {
            "id": f"{group_id}_{access}_{next(self.stub._ids)}",
            "principalId": principal_id,
            "groupId": group_id,
            "accessId": access,
            "startDateTime": "2026-01-01T00:00:00Z",
            "endDateTime": None,
            "memberType": "direct",
            **extra,
        }
        self.eligibilities.append(instance)
        return instance

    def handle(self, method: str, route: str, query: dict, body: dict) -> tuple[int, dict, dict]:
        if route == POLICIES:
            return self._policy(query)
        if route.startswith("groups/"):
            if method != "GET":
                return 405, {}, _error("BadRequest", "Method not allowed.")
            group = next((g for g in self.stub.groups if g["id"] == route.split("/")[1]), None)
            if group is None:
                return 404, {}, _error("Request_ResourceNotFound", "No such group.")
            return 200, {}, _public(group)
        name = route.removeprefix(GROUP_PIM)
        if method == "POST" and name == "assignmentScheduleRequests":
            return self._request(body, self.assignments, delayed=True)
        if method == "POST" and name == "eligibilityScheduleRequests":
            return self._request(body, self.eligibilities, delayed=False)
        if method == "GET" and name in ("assignmentScheduleInstances", "eligibilityScheduleInstances"):
            odata_filter = query.get("$filter", "")
            if "groupId eq " not in odata_filter and "principalId eq " not in odata_filter:
                return 400, {}, _error("BadRequest", "A filter on groupId or principalId is required.")
            if name == "assignmentScheduleInstances":
                self.stub._apply_due_changes(GROUP_ASSIGNMENTS)
            items = self.assignments if name == "assignmentScheduleInstances" else self.eligibilities
            try:
                found = _filtered(items, odata_filter)
            except ValueError as error:
                return 400, {}, _error("BadRequest", f"Invalid filter clause: {error}")
            return 200, {}, self.stub._page(route, found, query)
        return 404, {}, _error("Request_ResourceNotFound", f"No route {route}.")

    def _policy(self, query: dict) -> tuple[int, dict, dict]:
        """The group's member or owner policy: Graph wants scopeId, scopeType and (to pick one)
        roleDefinitionId in the filter."""
        clauses = dict(
            clause.split(" eq ", 1) for clause in query.get("$filter", "").split(" and ") if " eq " in clause
        )
        group_id = clauses.get("scopeId", "").strip("'")
        access = clauses.get("roleDefinitionId", "").strip("'")
        if not group_id or access not in ("member", "owner"):
            return 400, {}, _error("BadRequest", "scopeId, scopeType and roleDefinitionId are required.")
        rules = self.policies.get((group_id, access))
        items = []
        if rules is not None:
            assignment = {
                "id": f"Group_{group_id}_policy-{access}_{access}",
                "policyId": f"Group_{group_id}_policy-{access}",
                "scopeId": group_id,
                "scopeType": "Group",
                "roleDefinitionId": access,
            }
            if query.get("$expand") == "policy($expand=rules)":
                assignment["policy"] = {"id": assignment["policyId"], "rules": rules}
            items.append(assignment)
        return 200, {}, self.stub._page(POLICIES, items, query)

    def _request(self, body: dict, items: list[dict], *, delayed: bool) -> tuple[int, dict, dict]:
        key = (body.get("principalId"), body.get("groupId"), body.get("accessId"))
        action = body.get("action")
        if None in key or not action or key[2] not in ("member", "owner"):
            return 400, {}, _error("BadRequest", "accessId, principalId and groupId are required.")
        stub = self.stub
        with stub._lock:
            existing = [i for i in items if (i["principalId"], i["groupId"], i["accessId"]) == key]
            request_id = f"group-request-{next(stub._ids)}"
            schedule = body.get("scheduleInfo") or {}
            end = (schedule.get("expiration") or {}).get("endDateTime")
            if action == "adminAssign":
                if stub.policy_failure:
                    message = (
                        f"The following policy rules failed: {stub.policy_failure} - refused by the stub."
                    )
                    return 400, {}, _error("RoleAssignmentRequestPolicyValidationFailed", message)
                if existing:
                    return 400, {}, _error("RoleAssignmentExists", "The Role assignment already exists.")
                schedule_id = f"{key[1]}_{key[2]}_{next(stub._ids)}"
                add = self.add_assignment if delayed else self.add_eligibility

                def change():
                    add(
                        key[0],
                        key[1],
                        key[2],
                        startDateTime=schedule.get("startDateTime"),
                        endDateTime=end,
                        **(
                            {"assignmentScheduleId": schedule_id}
                            if delayed
                            else {"eligibilityScheduleId": schedule_id}
                        ),
                    )

                stub._apply(change, GROUP_ASSIGNMENTS) if delayed else change()
                answer = {
                    "id": request_id,
                    "status": "Provisioned",
                    "action": action,
                    "targetScheduleId": schedule_id,
                }
                return 201, {}, {**answer, "accessId": key[2], "principalId": key[0], "groupId": key[1]}
            if action in ("adminRemove", "adminUpdate", "adminExtend", "adminRenew"):
                if not existing:
                    return (
                        400,
                        {},
                        _error("RoleAssignmentDoesNotExist", "The Role assignment does not exist."),
                    )
                if action != "adminRemove":
                    existing[0]["endDateTime"] = end
                    return 201, {}, {"id": request_id, "status": "Provisioned", "action": action}
                gone = existing[0]

                def remove():
                    if gone in items:
                        items.remove(gone)

                stub._apply(remove, GROUP_ASSIGNMENTS) if delayed else remove()
                return (
                    201,
                    {},
                    {"id": request_id, "status": "Revoked", "action": action, "targetScheduleId": None},
                )
        return 400, {}, _error("BadRequest", f"Unsupported action {action}.")
