"""Staff endpoints of the shipments context. Views stay thin: validate, call one service, answer."""

from uuid import UUID

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import Shipment
from .serializers import AlreadyDispatchedSerializer, DispatchSerializer, ShipmentSerializer


class ShipmentDispatchView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="shipments_dispatch",
        summary="Hand a prepared shipment to the carrier (staff)",
        description="Emits ShipmentDispatched with the carrier and a tracking number. A shipment is "
        "dispatched once: a second dispatch answers 409 with the shipment as it left.",
        request=DispatchSerializer,
        responses={
            200: ShipmentSerializer,
            400: OpenApiResponse(description="invalid carrier (field errors)"),
            403: OpenApiResponse(description="staff only"),
            404: OpenApiResponse(description="unknown shipment"),
            409: AlreadyDispatchedSerializer,
        },
        tags=["shipments"],
    )
    def post(self, request: Request, id: UUID) -> Response:  # `id`: the path's fixed name, /shipments/{id}/
        body = DispatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            shipment = services.dispatch_shipment(shipment_id=id, carrier=body.validated_data.get("carrier"))
        except Shipment.DoesNotExist:
            raise Http404(f"no shipment {id}") from None
        except services.ShipmentAlreadyDispatched as refused:
            answer = {"detail": str(refused), "shipment": ShipmentSerializer(refused.shipment).data}
            return Response(answer, status=status.HTTP_409_CONFLICT)
        return Response(ShipmentSerializer(shipment).data)
