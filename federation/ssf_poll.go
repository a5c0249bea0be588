package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// SETPoller asks a Shared Signals transmitter's poll endpoint for SETs
// (RFC 8936), authenticating with a bearer token.
type SETPoller struct {
	URL    string
	Token  string
	Client *http.Client
}

// SETPollRequest is the body of one poll (RFC 8936 §2.1): the SETs to
// acknowledge (Ack), the SETs refused with an error (SetErrs, by jti), and
// how many new ones to return (MaxEvents; 0 only acknowledges).
type SETPollRequest struct {
	MaxEvents         int                   `json:"maxEvents"`
	ReturnImmediately bool                  `json:"returnImmediately"`
	Ack               []string              `json:"ack,omitempty"`
	SetErrs           map[string]SETPollErr `json:"setErrs,omitempty"`
}

// SETPollErr is one refused SET (RFC 8936 §2.4).
type SETPollErr struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// SETPollResponse is the transmitter's answer: the SETs by jti, and
// whether more are waiting.
type SETPollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// maxPollBody bounds a poll answer.
const maxPollBody = 4 << 20

// ErrSETPoll is a poll the transmitter did not answer with 200 and JSON.
var ErrSETPoll = errors.New("ssf poll failed")

// Poll sends req and returns the transmitter's answer.
func (p *SETPoller) Poll(ctx context.Context, req SETPollRequest) (SETPollResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return SETPollResponse{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return SETPollResponse{}, fmt.Errorf("%w: %w", ErrSETPoll, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("Authorization", "Bearer "+p.Token)
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hr)
	if err != nil {
		return SETPollResponse{}, fmt.Errorf("%w: %w", ErrSETPoll, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxPollBody+1))
	if err != nil {
		return SETPollResponse{}, fmt.Errorf("%w: read the answer: %w", ErrSETPoll, err)
	}
	if len(raw) > maxPollBody {
		return SETPollResponse{}, fmt.Errorf("%w: the answer is larger than %d bytes", ErrSETPoll, maxPollBody)
	}
	if resp.StatusCode != http.StatusOK {
		return SETPollResponse{}, fmt.Errorf("%w: the transmitter answered %s", ErrSETPoll, resp.Status)
	}
	var out SETPollResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return SETPollResponse{}, fmt.Errorf("%w: the answer is not JSON: %w", ErrSETPoll, err)
	}
	return out, nil
}
