# capcheck image: one binary, every command (`docker run IMAGE worker ...`).
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/capcheck ./cmd/capcheck

# Alpine rather than distroless: the compose healthchecks use its wget.
FROM alpine:3.20
RUN adduser -D -u 10001 capcheck && mkdir -p /out /in && chown capcheck /out
COPY --from=build /out/capcheck /usr/local/bin/capcheck
USER capcheck
WORKDIR /home/capcheck
# Named volumes mounted on /out start owned by capcheck (see docker-compose.yml).
VOLUME ["/out"]
ENTRYPOINT ["capcheck"]
CMD ["--help"]
