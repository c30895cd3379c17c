"""Staff endpoints of the stock context. Views stay thin: validate, call one service, answer."""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import Product
from .serializers import ReceiptSerializer, StockLevelSerializer


class StockReceiptsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="stock_receive",
        summary="Book goods that arrived in the warehouse (staff)",
        description="Adds `quantity` to the sku's stock on hand, emits StockLevelChanged and re-arms "
        "the reorder request once available stock is above the reorder point again.",
        request=ReceiptSerializer,
        responses={
            201: StockLevelSerializer,
            400: OpenApiResponse(description="invalid quantity (field errors)"),
            403: OpenApiResponse(description="staff only"),
            404: OpenApiResponse(description="unknown sku"),
            409: OpenApiResponse(
                description="the stock on hand would pass what a level counts: nothing booked"
            ),
        },
        tags=["stock"],
    )
    def post(self, request: Request, sku: str) -> Response:
        if not Product.objects.filter(sku=sku).exists():
            raise Http404(f"no product with sku {sku!r}")
        receipt = ReceiptSerializer(data=request.data)
        receipt.is_valid(raise_exception=True)
        try:
            level = services.receive_stock(
                sku=sku, quantity=receipt.validated_data["quantity"], received_by=request.user
            )
        except Product.DoesNotExist:
            raise Http404(f"no product with sku {sku!r}") from None
        except services.TooMuchStock as error:
            # A valid quantity that does not fit what is on hand now: a conflict with the state,
            # like too little stock for an order, not invalid input.
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(StockLevelSerializer(level).data, status=status.HTTP_201_CREATED)
