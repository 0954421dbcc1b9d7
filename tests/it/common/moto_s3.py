"""moto_server for the mirror tests (tests/it/mirror.rs), unsigned requests always routed to S3.

moto routes an unsigned GET whose path ends in /.well-known/openid-configuration to its Cognito
emulation (user-pool discovery documents), so an anonymous read of a discovery document stored in
a bucket would reach Cognito instead of S3. Real S3 has no such rule; here unsigned paths are not
used for routing, and moto falls back to S3, its default service.
"""

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

DomainDispatcherApplication.get_service_from_unsigned_path = staticmethod(
    lambda path_info: (None, None)
)

if __name__ == "__main__":
    main()
